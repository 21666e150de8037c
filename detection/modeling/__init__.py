"""The detector's networks: backbones, FPN, heads, losses, diagnostics, and the keras.Model."""
