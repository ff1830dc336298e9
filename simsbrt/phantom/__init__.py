"""simsbrt.phantom"""
