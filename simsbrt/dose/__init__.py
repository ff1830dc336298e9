"""simsbrt.dose"""
