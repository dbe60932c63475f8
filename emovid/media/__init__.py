"""Reading inputs: finding them, telling what a file is, decoding video frames and photos."""
