// EXIF orientation parser and transform (see exif.h). Every read goes through Reader, which checks
// the bounds first; loops are bounded by the input size (segments/chunks advance by >= 1 byte, IFD0
// entries by the entry count that fits), so any input terminates without reading outside it.
#include "coordexp/model/exif.h"

#include <cstring>

namespace coordexp::model {
namespace {

constexpr uint16_t kOrientationTag = 0x0112;
constexpr uint16_t kTypeShort = 3, kTypeLong = 4;

struct Reader {
  const uint8_t* p;
  size_t n;
  bool has(size_t off, size_t len) const { return off <= n && len <= n - off; }
  uint32_t be16(size_t o) const { return (uint32_t{p[o]} << 8) | p[o + 1]; }
  uint32_t be32(size_t o) const { return (be16(o) << 16) | be16(o + 2); }
  uint32_t le16(size_t o) const { return (uint32_t{p[o + 1]} << 8) | p[o]; }
  uint32_t le32(size_t o) const { return (le16(o + 2) << 16) | le16(o); }
  bool starts_with(size_t o, const char* s, size_t len) const { return has(o, len) && std::memcmp(p + o, s, len) == 0; }
};

// Orientation from a TIFF structure ("II*\0" / "MM\0*" header, IFD0); 1 when absent or malformed.
int tiff_orientation(const uint8_t* data, size_t size) {
  const Reader r{data, size};
  if (!r.has(0, 8)) return 1;
  bool le;
  if (r.starts_with(0, "II", 2)) le = true;
  else if (r.starts_with(0, "MM", 2)) le = false;
  else return 1;
  auto u16 = [&](size_t o) { return le ? r.le16(o) : r.be16(o); };
  auto u32 = [&](size_t o) { return le ? r.le32(o) : r.be32(o); };
  if (u16(2) != 42) return 1;
  const size_t ifd = u32(4);
  if (!r.has(ifd, 2)) return 1;
  const size_t count = u16(ifd);
  for (size_t i = 0; i < count; ++i) {
    const size_t e = ifd + 2 + 12 * i;
    if (!r.has(e, 12)) return 1;  // truncated directory
    if (u16(e) != kOrientationTag) continue;
    const uint32_t type = u16(e + 2), n = u32(e + 4);
    if (n < 1) return 1;
    uint32_t v;
    if (type == kTypeShort) v = u16(e + 8);  // values of <= 4 bytes sit in the entry itself
    else if (type == kTypeLong) v = u32(e + 8);
    else return 1;
    return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
  }
  return 1;
}

// An EXIF payload: the TIFF structure, optionally after the "Exif\0\0" identifier.
int exif_payload_orientation(const uint8_t* data, size_t size) {
  const Reader r{data, size};
  if (r.starts_with(0, "Exif\0\0", 6)) return tiff_orientation(data + 6, size - 6);
  return tiff_orientation(data, size);
}

int jpeg_orientation(const Reader& r) {
  size_t pos = 2;  // after SOI
  while (r.has(pos, 2)) {
    if (r.p[pos] != 0xFF) return 1;  // not at a marker: malformed
    const uint8_t marker = r.p[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0xD9 || marker == 0xDA) return 1;  // EOI / start of scan: metadata is over
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // standalone markers
      pos += 2;
      continue;
    }
    if (!r.has(pos + 2, 2)) return 1;
    const size_t len = r.be16(pos + 2);  // includes the two length bytes
    if (len < 2 || !r.has(pos + 2, len)) return 1;
    const size_t payload = pos + 4, payload_len = len - 2;
    if (marker == 0xE1 && r.starts_with(payload, "Exif\0\0", 6) && payload_len >= 6)
      return tiff_orientation(r.p + payload + 6, payload_len - 6);  // the first EXIF block decides
    pos += 2 + len;
  }
  return 1;
}

int png_orientation(const Reader& r) {
  size_t pos = 8;  // after the signature
  while (r.has(pos, 12)) {
    const size_t len = r.be32(pos);
    if (!r.has(pos + 8, len) || !r.has(pos + 8 + len, 4)) return 1;
    if (r.starts_with(pos + 4, "eXIf", 4)) return exif_payload_orientation(r.p + pos + 8, len);
    if (r.starts_with(pos + 4, "IEND", 4)) return 1;
    pos += 12 + len;
  }
  return 1;
}

int webp_orientation(const Reader& r) {
  size_t pos = 12;  // after "RIFF" size "WEBP"
  while (r.has(pos, 8)) {
    const size_t len = r.le32(pos + 4);
    if (!r.has(pos + 8, len)) return 1;
    if (r.starts_with(pos, "EXIF", 4)) return exif_payload_orientation(r.p + pos + 8, len);
    pos += 8 + len + (len & 1);  // chunks are padded to even sizes
  }
  return 1;
}

}  // namespace

int exif_orientation(const uint8_t* bytes, size_t size) {
  if (bytes == nullptr) return 1;
  const Reader r{bytes, size};
  if (r.has(0, 3) && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) return jpeg_orientation(r);
  if (r.starts_with(0, "\x89PNG\r\n\x1a\n", 8)) return png_orientation(r);
  if (r.starts_with(0, "RIFF", 4) && r.starts_with(8, "WEBP", 4)) return webp_orientation(r);
  if (r.starts_with(0, "II*\0", 4) || r.starts_with(0, "MM\0*", 4)) return tiff_orientation(bytes, size);
  return 1;
}

torch::Tensor apply_exif_orientation(const torch::Tensor& image_HWC, int orientation) {
  const torch::Tensor& x = image_HWC;
  switch (orientation) {
    case 2: return x.flip({1}).contiguous();                   // mirror left-right
    case 3: return x.flip({0, 1}).contiguous();                // rotate 180
    case 4: return x.flip({0}).contiguous();                   // mirror top-bottom
    case 5: return x.permute({1, 0, 2}).contiguous();          // transpose: out[i][j] = in[j][i]
    case 6: return x.flip({0}).permute({1, 0, 2}).contiguous();  // 90 cw: out[i][j] = in[H-1-j][i]
    case 7: return x.flip({0, 1}).permute({1, 0, 2}).contiguous();  // transverse: in[H-1-j][W-1-i]
    case 8: return x.flip({1}).permute({1, 0, 2}).contiguous();  // 90 ccw: out[i][j] = in[j][W-1-i]
    default: return x.contiguous();
  }
}

}  // namespace coordexp::model
