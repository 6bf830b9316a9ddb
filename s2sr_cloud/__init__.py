"""s2sr-cloud"""
