// EXIF orientation: JPEGs (and a PNG eXIf chunk) carrying orientations 1-8, written here (an
// asymmetric image encoded with cv::imencode, an APP1/eXIf block spliced in), decode to the displayed
// image of Pillow's ImageOps.exif_transpose (quadrant colours from the EXIF definition, and pixel for
// pixel against index formulas on the stored pixels); malformed or truncated metadata never crashes
// and means "as stored".
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <random>
#include <string>
#include <vector>

#include "coordexp/model/exif.h"
#include "coordexp/model/vision_preprocess.h"

namespace {

namespace model = coordexp::model;
using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, uint32_t v, bool be) {
  if (be) b.insert(b.end(), {uint8_t(v >> 8), uint8_t(v)});
  else b.insert(b.end(), {uint8_t(v), uint8_t(v >> 8)});
}
void put32(Bytes& b, uint32_t v, bool be) {
  if (be) put16(b, v >> 16, true), put16(b, v & 0xFFFF, true);
  else put16(b, v & 0xFFFF, false), put16(b, v >> 16, false);
}

// A TIFF structure whose IFD0 holds Make ("abc") then Orientation (SHORT) = `orientation`.
Bytes tiff_with_orientation(uint32_t orientation, bool be, uint32_t type = 3) {
  Bytes t;
  if (be) t.insert(t.end(), {'M', 'M', 0, 42});
  else t.insert(t.end(), {'I', 'I', 42, 0});
  put32(t, 8, be);   // IFD0 offset
  put16(t, 2, be);   // entries
  put16(t, 0x010F, be), put16(t, 2, be), put32(t, 4, be), t.insert(t.end(), {'a', 'b', 'c', 0});
  put16(t, 0x0112, be), put16(t, type, be), put32(t, 1, be);
  if (type == 3) put16(t, orientation, be), put16(t, 0, be);
  else put32(t, orientation, be);
  put32(t, 0, be);  // no next IFD
  return t;
}

Bytes app1_exif(const Bytes& tiff) {
  Bytes s{0xFF, 0xE1};
  put16(s, static_cast<uint32_t>(tiff.size() + 8), true);
  s.insert(s.end(), {'E', 'x', 'i', 'f', 0, 0});
  s.insert(s.end(), tiff.begin(), tiff.end());
  return s;
}

// Stored image H=16, W=24: quadrants red | green over blue | white (BGR for OpenCV).
cv::Mat asymmetric_bgr() {
  cv::Mat m(16, 24, CV_8UC3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 24; ++x) {
      const bool top = y < 8, left = x < 12;
      m.at<cv::Vec3b>(y, x) = top ? (left ? cv::Vec3b(0, 0, 255) : cv::Vec3b(0, 255, 0))
                                  : (left ? cv::Vec3b(255, 0, 0) : cv::Vec3b(255, 255, 255));
    }
  return m;
}

Bytes encode(const std::string& ext) {
  Bytes out;
  EXPECT_TRUE(cv::imencode(ext, asymmetric_bgr(), out, {cv::IMWRITE_JPEG_QUALITY, 100}));
  return out;
}

// The JPEG with an APP1 Exif segment after its JFIF APP0 (the parser walks past a segment).
Bytes jpeg_with(const Bytes& jpeg, const Bytes& segment) {
  EXPECT_EQ(jpeg[2], 0xFF);
  EXPECT_EQ(jpeg[3], 0xE0);  // OpenCV writes APP0 (JFIF) first
  const size_t app0_end = 4 + ((size_t{jpeg[4]} << 8) | jpeg[5]);
  Bytes out(jpeg.begin(), jpeg.begin() + static_cast<long>(app0_end));
  out.insert(out.end(), segment.begin(), segment.end());
  out.insert(out.end(), jpeg.begin() + static_cast<long>(app0_end), jpeg.end());
  return out;
}

torch::Tensor decode(const Bytes& b) { return model::decode_rgb_image(b.data(), b.size(), "test image"); }

enum Colour { R, G, B, W };
// Displayed quadrants [top-left, top-right, bottom-left, bottom-right] per orientation (EXIF 2.3
// Orientation: 2 mirrored, 3 rotated 180, 4 flipped, 5 transposed, 6 needs 90 cw, 7 transverse, 8 90 ccw).
const Colour kQuadrants[9][4] = {{},           {R, G, B, W}, {G, R, W, B}, {W, B, G, R}, {B, W, R, G},
                                 {R, B, G, W}, {B, R, W, G}, {W, G, B, R}, {G, W, R, B}};

bool near_colour(const torch::Tensor& rgb, int64_t y, int64_t x, Colour c) {
  static const int kRgb[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};
  for (int ch = 0; ch < 3; ++ch)
    if (std::abs(rgb[y][x][ch].item<int>() - kRgb[c][ch]) > 40) return false;
  return true;
}

// out[i][j] from the stored image by the EXIF definition (independent of apply_exif_orientation).
torch::Tensor expected_by_index(const torch::Tensor& in, int o) {
  const int64_t H = in.size(0), W = in.size(1);
  const bool swap = o >= 5;
  auto out = torch::empty({swap ? W : H, swap ? H : W, 3}, torch::kUInt8);
  auto a = in.accessor<uint8_t, 3>();
  auto b = out.accessor<uint8_t, 3>();
  for (int64_t i = 0; i < out.size(0); ++i)
    for (int64_t j = 0; j < out.size(1); ++j) {
      int64_t y = i, x = j;
      switch (o) {
        case 2: x = W - 1 - j; break;
        case 3: y = H - 1 - i, x = W - 1 - j; break;
        case 4: y = H - 1 - i; break;
        case 5: y = j, x = i; break;
        case 6: y = H - 1 - j, x = i; break;
        case 7: y = H - 1 - j, x = W - 1 - i; break;
        case 8: y = j, x = W - 1 - i; break;
        default: break;
      }
      for (int c = 0; c < 3; ++c) b[i][j][c] = a[y][x][c];
    }
  return out;
}

uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

}  // namespace

TEST(ExifOrientation, JpegOrientations1To8DecodeToTheDisplayedImage) {
  const Bytes plain = encode(".jpg");
  ASSERT_EQ(model::exif_orientation(plain.data(), plain.size()), 1);
  const torch::Tensor stored = decode(plain);
  ASSERT_EQ(stored.sizes(), (std::vector<int64_t>{16, 24, 3}));
  for (int o = 1; o <= 8; ++o)
    for (bool be : {true, false}) {
      const Bytes jpeg = jpeg_with(plain, app1_exif(tiff_with_orientation(o, be)));
      SCOPED_TRACE("orientation " + std::to_string(o) + (be ? " big-endian" : " little-endian"));
      EXPECT_EQ(model::exif_orientation(jpeg.data(), jpeg.size()), o);
      const torch::Tensor shown = decode(jpeg);
      const std::vector<int64_t> size = o >= 5 ? std::vector<int64_t>{24, 16, 3} : std::vector<int64_t>{16, 24, 3};
      ASSERT_EQ(shown.sizes(), size);
      const int64_t h = shown.size(0), w = shown.size(1);
      const int64_t ys[2] = {h / 4, 3 * h / 4}, xs[2] = {w / 4, 3 * w / 4};
      for (int q = 0; q < 4; ++q)
        EXPECT_TRUE(near_colour(shown, ys[q / 2], xs[q % 2], kQuadrants[o][q])) << "quadrant " << q;
      // The entropy-coded data is unchanged, so the stored pixels are identical: exact comparison.
      EXPECT_TRUE(torch::equal(shown, expected_by_index(stored, o)));
    }
  // A LONG-typed value is read too (Pillow does); an out-of-range value is "as stored".
  const Bytes as_long = jpeg_with(plain, app1_exif(tiff_with_orientation(6, true, 4)));
  EXPECT_EQ(model::exif_orientation(as_long.data(), as_long.size()), 6);
  for (uint32_t bad : {0u, 9u, 0xFFFFu}) {
    const Bytes j = jpeg_with(plain, app1_exif(tiff_with_orientation(bad, false)));
    EXPECT_EQ(model::exif_orientation(j.data(), j.size()), 1) << bad;
    EXPECT_TRUE(torch::equal(decode(j), stored));
  }
  // The first Exif block decides; a non-Exif APP1 (e.g. XMP) before it is skipped.
  Bytes xmp{0xFF, 0xE1, 0, 10, 'h', 't', 't', 'p', ':', '/', '/', '/'};
  Bytes two = app1_exif(tiff_with_orientation(3, true));
  const Bytes second = app1_exif(tiff_with_orientation(8, true));
  two.insert(two.begin(), xmp.begin(), xmp.end());
  two.insert(two.end(), second.begin(), second.end());
  const Bytes j = jpeg_with(plain, two);
  EXPECT_EQ(model::exif_orientation(j.data(), j.size()), 3);
}

TEST(ExifOrientation, PngExifChunkIsAppliedLosslessly) {
  const Bytes png = encode(".png");
  const torch::Tensor stored = decode(png);
  const Bytes tiff = tiff_with_orientation(8, false);
  Bytes chunk;
  put32(chunk, static_cast<uint32_t>(tiff.size()), true);
  chunk.insert(chunk.end(), {'e', 'X', 'I', 'f'});
  chunk.insert(chunk.end(), tiff.begin(), tiff.end());
  put32(chunk, crc32(chunk.data() + 4, chunk.size() - 4), true);
  Bytes out(png.begin(), png.begin() + 33);  // signature (8) + IHDR (25)
  out.insert(out.end(), chunk.begin(), chunk.end());
  out.insert(out.end(), png.begin() + 33, png.end());
  EXPECT_EQ(model::exif_orientation(out.data(), out.size()), 8);
  const torch::Tensor shown = decode(out);
  EXPECT_TRUE(torch::equal(shown, expected_by_index(stored, 8)));
  EXPECT_TRUE(near_colour(shown, 0, 0, G));  // lossless: exact colours at the corners
  EXPECT_TRUE(near_colour(shown, 23, 15, B));
}

TEST(ExifOrientation, MalformedOrTruncatedMetadataNeverCrashesAndMeansAsStored) {
  const Bytes app1 = app1_exif(tiff_with_orientation(6, true));
  const Bytes jpeg = jpeg_with(encode(".jpg"), app1);
  const size_t app1_end = 20 + app1.size();  // SOI + JFIF APP0 (18) + the Exif segment
  // Every prefix: the parser stays inside the buffer and finds the value only once the whole
  // segment is there.
  for (size_t n = 0; n <= jpeg.size(); ++n) {
    ASSERT_EQ(model::exif_orientation(jpeg.data(), n), n < app1_end ? 1 : 6) << n;
  }
  EXPECT_EQ(model::exif_orientation(nullptr, 10), 1);
  // Random byte changes in the metadata and its lengths: always an answer in 1..8.
  std::mt19937 rng(5);
  for (int trial = 0; trial < 3000; ++trial) {
    Bytes m = jpeg;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) m[2 + rng() % 60] = static_cast<uint8_t>(rng());
    const int o = model::exif_orientation(m.data(), m.size());
    ASSERT_TRUE(o >= 1 && o <= 8) << trial;
  }
  // Hand-made damage: IFD offset past the end, a huge entry count, a wrong type, "Exif" without TIFF.
  auto with_tiff = [&](Bytes tiff) {
    const Bytes j = jpeg_with(encode(".jpg"), app1_exif(tiff));
    return model::exif_orientation(j.data(), j.size());
  };
  Bytes t = tiff_with_orientation(6, true);
  t[4] = 0x7F;
  EXPECT_EQ(with_tiff(t), 1);
  t = tiff_with_orientation(6, true);
  t[8] = 0xFF, t[9] = 0xFF;  // 65535 entries, 2 present
  EXPECT_EQ(with_tiff(t), 6);  // the orientation entry is within the bytes: found before the cut
  t = tiff_with_orientation(6, true);
  ASSERT_EQ(t[25], 3);
  t[25] = 7;  // Orientation type 7 (UNDEFINED)
  EXPECT_EQ(with_tiff(t), 1);
  EXPECT_EQ(with_tiff({}), 1);
  EXPECT_EQ(with_tiff({'M', 'M', 0, 41, 0, 0, 0, 8}), 1);  // bad magic
  // A zero-length segment and a segment longer than the file.
  Bytes z = encode(".jpg");
  const Bytes bad_len{0xFF, 0xE1, 0x00, 0x00};
  z = jpeg_with(z, bad_len);
  EXPECT_EQ(model::exif_orientation(z.data(), z.size()), 1);
  const Bytes long_len{0xFF, 0xE1, 0xFF, 0xFF, 'E', 'x', 'i', 'f', 0, 0};
  Bytes l = jpeg_with(encode(".jpg"), long_len);
  l.resize(100);  // the segment claims 65535 bytes
  EXPECT_EQ(model::exif_orientation(l.data(), l.size()), 1);
}
