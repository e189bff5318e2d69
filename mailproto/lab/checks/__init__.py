"""Check functions for the lessons' exercises, one module per lesson (see ``exercises.py``)."""
