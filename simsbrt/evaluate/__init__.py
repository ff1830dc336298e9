"""simsbrt.evaluate"""
