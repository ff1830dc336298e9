"""simsbrt.protocols"""
