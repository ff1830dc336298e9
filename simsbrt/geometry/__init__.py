"""simsbrt.geometry"""
