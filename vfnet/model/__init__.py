"""The network and its checkpoint files: shared by training and inference, importing neither."""
