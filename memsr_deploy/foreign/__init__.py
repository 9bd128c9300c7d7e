"""Other people's SR networks, read from their checkpoints' state dicts alone (no pickled code).

One module per architecture family, each written from its paper's structure and readable top to bottom:
the network as an ``nn.Module`` whose parameter names are the family's published key layout, and ``read``,
which recognises the layout and its hyper-parameters (scale, widths, depth, channels) from the keys and
shapes. ``checkpoint.py`` is the one entry: it opens the file without unpickling and asks each family in turn.
"""
