"""The one image reader and writer of memsr: training, evaluation and the upscaler see the same pixels.

    reader = open_image("photo.jpg")            # header checked; rows decoded on demand
    pic = RowWindows(reader)                    # windows for the runners, a small row cache
    write_bands("out.png", bands, h, w, c, np.uint8, icc=reader.icc, exif=reader.exif)
    img = read_image("photo.jpg")               # whole image, HxWx3 float32 RGB in [0, 1]
"""
from .decode import ImageReader, open_image, read_image, read_image_uint8, read_picture
from .encode import prepare_for_format, readable_by_all, save_png, write_bands, write_picture
from .formats import (DEFAULT_MAX_PIXELS, EIGHT_BIT_ONLY, IMAGE_EXTENSIONS, NO_ALPHA, READABLE, WRITERS, from_float,
                      from_uint8, is_image_file, output_format, quantise, storage_dtype, to_float, to_uint8)
from .picture import Picture, RowWindows

__all__ = ["ImageReader", "open_image", "read_image", "read_image_uint8", "read_picture", "prepare_for_format",
           "readable_by_all", "save_png", "write_bands", "write_picture", "DEFAULT_MAX_PIXELS", "EIGHT_BIT_ONLY",
           "IMAGE_EXTENSIONS", "NO_ALPHA", "READABLE", "WRITERS", "from_float", "from_uint8", "is_image_file",
           "output_format", "quantise", "storage_dtype", "to_float", "to_uint8", "Picture", "RowWindows"]
