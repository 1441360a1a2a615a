"""Running student code in a separate, limited process."""
