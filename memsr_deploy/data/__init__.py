"""Images, MATLAB-compatible bicubic resize, training patches, evaluation sets and the photo fetcher."""
