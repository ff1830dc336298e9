"""simsbrt.optimize"""
