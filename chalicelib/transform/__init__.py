"""Transform: raw envelopes into the curated tables of contract §4."""
