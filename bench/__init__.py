"""`make bench` (python -m bench): side-by-side measurements, printed as one table of ratios."""
