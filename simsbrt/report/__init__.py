"""simsbrt.report"""
