// EXIF orientation (TIFF tag 0x0112) of an encoded image, read from the file's bytes with a small
// bounded parser (JPEG APP1 "Exif", PNG eXIf, WebP EXIF chunks and a TIFF file's own IFD0), and the
// pixel transform that shows the image as viewers do, i.e. Pillow's ImageOps.exif_transpose (what
// Hugging Face's load_image applies). Never decodes pixels; malformed metadata means "no orientation".
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>

namespace coordexp::model {

// The Orientation value 1..8 of the first EXIF block; 1 (as stored) when there is none, it is
// malformed or truncated, or the value is outside 1..8. Reads only within [bytes, bytes + size).
int exif_orientation(const uint8_t* bytes, size_t size);

// The displayed image for a stored uint8 [H, W, C] image with EXIF orientation `orientation`
// (Pillow's exif_transpose: 2 mirror left-right, 3 rotate 180, 4 mirror top-bottom, 5 transpose,
// 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise; 5-8 swap H and W). Other
// values return the input. The result is contiguous.
torch::Tensor apply_exif_orientation(const torch::Tensor& image_HWC, int orientation);

}  // namespace coordexp::model
