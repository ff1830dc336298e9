"""simsbrt.io"""
