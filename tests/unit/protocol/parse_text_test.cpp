// CoordJSON text rendering and strict text parsing without a tokenizer: exact rendering, escaping,
// every drop reason, structural statuses, braces inside strings, truncation at every byte, and
// thousands of random render -> parse round trips.
#include <gtest/gtest.h>

#include <set>

#include "coordexp/protocol/parse.h"
#include "test_objects.h"

namespace {

using namespace coordexp::protocol;
using namespace coordexp::protocol::testing;

const std::string kCatDog =
    R"({"objects": [{"desc": "black cat", "bbox_2d": [<|coord_110|>, <|coord_310|>, <|coord_410|>, <|coord_705|>]}, )"
    R"({"desc": "yellow dog", "bbox_2d": [<|coord_520|>, <|coord_285|>, <|coord_890|>, <|coord_660|>]}]})";

std::string sub(const std::string& s, CharRange r) { return s.substr(r.begin, r.end - r.begin); }

TEST(RenderText, SeedExampleExactTextAndLayout) {
  const AnswerText a = render_text({black_cat_gt(), yellow_dog_gt()}, FieldOrder::kDescFirst);
  EXPECT_EQ(a.text, kCatDog);
  ASSERT_EQ(a.objects.size(), 2u);
  EXPECT_EQ(sub(a.text, a.objects[0].record),
            R"({"desc": "black cat", "bbox_2d": [<|coord_110|>, <|coord_310|>, <|coord_410|>, <|coord_705|>]})");
  EXPECT_EQ(sub(a.text, a.objects[1].desc), "yellow dog");
  EXPECT_EQ(sub(a.text, a.objects[1].coords[3]), "<|coord_660|>");
  EXPECT_EQ(a.text[a.array_close], ']');
  EXPECT_EQ(a.outer_close, a.text.size() - 1);

  const AnswerText g = render_text({black_cat_gt()}, FieldOrder::kGeometryFirst);
  EXPECT_EQ(g.text, R"({"objects": [{"bbox_2d": [<|coord_110|>, <|coord_310|>, <|coord_410|>, <|coord_705|>], "desc": "black cat"}]})");
  EXPECT_EQ(render_text({}, FieldOrder::kDescFirst).text, R"({"objects": []})");
  Object poly{"roof", GeometryKind::kPoly, {1, 2, 30, 2, 15, 40}};
  EXPECT_EQ(render_text({poly}, FieldOrder::kDescFirst).text,
            R"({"objects": [{"desc": "roof", "poly": [<|coord_1|>, <|coord_2|>, <|coord_30|>, <|coord_2|>, <|coord_15|>, <|coord_40|>]}]})");
}

TEST(RenderText, EscapingLikePythonJsonDumps) {
  EXPECT_EQ(escape_json_string("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(escape_json_string("\n\r\t\b\f"), "\\n\\r\\t\\b\\f");
  EXPECT_EQ(escape_json_string(std::string("\x01\x1f", 2)), "\\u0001\\u001f");
  EXPECT_EQ(escape_json_string("é中😀/\x7f"), "é中😀/\x7f");  // non-ASCII and / kept
  EXPECT_TRUE(contains_special_token_text("x <|coord_5|> y"));
  EXPECT_TRUE(contains_special_token_text("<|im_end|>"));
  EXPECT_FALSE(contains_special_token_text("<| |> <||> a|b <|x"));
}

struct DropCase {
  std::string entry;
  DropReason reason;
};

std::string answer_with(const std::string& entry) {
  return R"({"objects": [)" + entry + R"(, {"desc": "ok", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]}]})";
}

TEST(ParseText, EveryDropReasonAndParsingContinues) {
  const std::string c4 = "[<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]";
  const std::vector<DropCase> cases = {
      {R"({"desc" "a", "bbox_2d": )" + c4 + "}", DropReason::kMalformedJson},
      {R"({"desc": "a\q", "bbox_2d": )" + c4 + "}", DropReason::kMalformedJson},
      {"{\"desc\": \"a\nb\", \"bbox_2d\": " + c4 + "}", DropReason::kMalformedJson},  // raw newline
      {R"({"desc": "a", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|> <|coord_4|>]})", DropReason::kMalformedJson},
      {R"({"desc": "a", "bbox_2d": [<|coord_x|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]})", DropReason::kMalformedJson},
      {R"({"desc": "a", "bbox_2d": )" + c4 + ",}", DropReason::kMalformedJson},
      {R"({"desc": "\ud800", "bbox_2d": )" + c4 + "}", DropReason::kMalformedJson},
      {R"({"desc": "a", "desc": "b", "bbox_2d": )" + c4 + "}", DropReason::kDuplicateKey},
      {R"({"desc": "a", "bbox_2d": )" + c4 + R"(, "bbox_2d": )" + c4 + "}", DropReason::kDuplicateKey},
      {R"({"desc": "a", "bbox_2d": )" + c4 + R"(, "score": 0.9})", DropReason::kExtraKey},
      {R"({"desc": "a", "bbox_2d": )" + c4 + R"(, "poly_points": 2})", DropReason::kExtraKey},
      {R"({"bbox_2d": )" + c4 + "}", DropReason::kMissingDesc},
      {"{}", DropReason::kMissingDesc},
      {R"({"desc": ["a"], "bbox_2d": )" + c4 + "}", DropReason::kDescNotString},
      {R"({"desc": "", "bbox_2d": )" + c4 + "}", DropReason::kEmptyDesc},
      {R"({"desc": " \n ", "bbox_2d": )" + c4 + "}", DropReason::kEmptyDesc},
      {R"({"desc": "a <|coord_5|>", "bbox_2d": )" + c4 + "}", DropReason::kSpecialTokenInDesc},
      {R"({"desc": "a"})", DropReason::kMissingGeometry},
      {R"({"desc": "a", "bbox_2d": )" + c4 + R"(, "poly": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>, <|coord_5|>, <|coord_6|>]})", DropReason::kTwoGeometries},
      {R"({"desc": "a", "bbox_2d": <|coord_1|>})", DropReason::kGeometryNotArray},
      {R"({"desc": "a", "bbox_2d": "[<|coord_1|>]"})", DropReason::kGeometryNotArray},
      {R"({"desc": "a", "bbox_2d": [1, 2, 3, 4]})", DropReason::kNonCoordValue},
      {R"({"desc": "a", "bbox_2d": ["<|coord_1|>", <|coord_2|>, <|coord_3|>, <|coord_4|>]})", DropReason::kNonCoordValue},
      {R"({"desc": "a", "bbox_2d": [<|coord_1000|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]})", DropReason::kNonCoordValue},
      {R"({"desc": "a", "bbox_2d": [<|coord_01|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]})", DropReason::kNonCoordValue},
      {R"({"desc": "a", "bbox_2d": [<|coord_*|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]})", DropReason::kNonCoordValue},
      {R"({"desc": "a", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>]})", DropReason::kBadArity},
      {R"({"desc": "a", "bbox_2d": [[<|coord_1|>, <|coord_2|>], [<|coord_3|>]]})", DropReason::kBadArity},
      {R"({"desc": "a", "poly": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]})", DropReason::kBadArity},
      {R"({"desc": "a", "poly": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>, <|coord_5|>]})", DropReason::kBadArity},
      {"{\"desc\": \"\xff\", \"bbox_2d\": " + c4 + "}", DropReason::kInvalidUtf8},
  };
  std::set<DropReason> covered;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.entry);
    const ParseResult r = parse_text(answer_with(c.entry));
    EXPECT_EQ(r.status, RolloutStatus::kComplete) << r.error;
    ASSERT_EQ(r.entries.size(), 2u);
    EXPECT_EQ(r.entries[0].reason, c.reason) << drop_reason_name(r.entries[0].reason) << ": " << r.entries[0].detail;
    EXPECT_FALSE(r.entries[0].detail.empty());
    EXPECT_TRUE(r.entries[0].complete);  // complete entries stay in the append-ready prefix
    EXPECT_TRUE(r.entries[1].valid());
    EXPECT_EQ(r.num_complete, 2u);
    EXPECT_EQ(r.valid_objects(), (std::vector<Object>{make_box("ok", {1, 2, 3, 4})}));
    covered.insert(c.reason);
  }
  // Reasons that stop the array scan: truncated, unbalanced.
  const std::string first = R"({"objects": [{"desc": "ok", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]}, )";
  struct StopCase {
    std::string tail;
    DropReason reason;
    RolloutStatus status;
  };
  for (const StopCase& c : std::vector<StopCase>{
           {R"({"desc": "a", "bbox_2d": [<|coord_1|>, <|co)", DropReason::kTruncated, RolloutStatus::kTruncated},
           {R"({"desc": "a", "bbox_2d": [<|coord_1|>}, {"desc": "b"}]})", DropReason::kUnbalanced, RolloutStatus::kMalformed},
       }) {
    SCOPED_TRACE(c.tail);
    const ParseResult r = parse_text(first + c.tail);
    EXPECT_EQ(r.status, c.status);
    ASSERT_EQ(r.entries.size(), 2u);
    EXPECT_EQ(r.entries[1].reason, c.reason);
    EXPECT_FALSE(r.entries[1].complete);
    EXPECT_EQ(r.num_complete, 1u);
    EXPECT_EQ(r.append_cut, first.size() - 2);  // right after the first entry's '}'
    covered.insert(c.reason);
  }
  for (int i = 1; i <= static_cast<int>(DropReason::kBadArity); ++i)
    EXPECT_TRUE(covered.count(static_cast<DropReason>(i)))
        << "no case for " << drop_reason_name(static_cast<DropReason>(i));
}

// valid, invalid-UTF-8, valid: the middle entry is dropped alone (complete, in the append-ready
// prefix) and the scan goes on, whatever the bad bytes and wherever they sit in the entry.
TEST(ParseText, InvalidUtf8EntryIsDroppedAloneAndScanningContinues) {
  const std::string c4 = "[<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]";
  const std::string head = R"({"objects": [{"desc": "ok", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]}, )";
  const std::string last = R"({"desc": "b", "bbox_2d": [<|coord_5|>, <|coord_6|>, <|coord_7|>, <|coord_8|>]})";
  struct Case {
    std::string name, entry;
    size_t bad_offset;  // of the first invalid byte, from the entry's '{'
  };
  const std::string d = "{\"desc\": \"";  // 10 bytes
  const std::vector<Case> cases = {
      {"lone 0xff", d + "a\xff\", \"bbox_2d\": " + c4 + "}", 11},
      {"lone continuation", d + "\x80\", \"bbox_2d\": " + c4 + "}", 10},
      {"lead byte cut by the quote", d + "a\xc3\", \"bbox_2d\": " + c4 + "}", 11},
      {"lead byte cut by a brace-like desc", d + "\xe4\xb8}\", \"bbox_2d\": " + c4 + "}", 10},
      {"overlong '/'", d + "\xc0\xaf\", \"bbox_2d\": " + c4 + "}", 10},
      {"UTF-16 surrogate", d + "\xed\xa0\x80\", \"bbox_2d\": " + c4 + "}", 10},
      {"above U+10FFFF", d + "\xf4\x90\x80\x80\", \"bbox_2d\": " + c4 + "}", 10},
      {"escaped lead byte", d + "\\\xc3\", \"bbox_2d\": " + c4 + "}", 11},
      {"in a key", "{\"de\xffsc\": \"a\", \"bbox_2d\": " + c4 + "}", 4},
      {"outside strings", "{\"desc\": \"a\", \xfe\"bbox_2d\": " + c4 + "}", 14},
      {"and malformed JSON too", d + "\xff\" \"bbox_2d\" " + c4 + "}", 10},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string text = head + c.entry + ", " + last + "]}";
    const ParseResult r = parse_text(text);
    EXPECT_EQ(r.status, RolloutStatus::kComplete) << r.error;
    ASSERT_EQ(r.entries.size(), 3u);
    EXPECT_EQ(r.num_complete, 3u);
    EXPECT_EQ(r.num_valid(), 2u);
    EXPECT_TRUE(r.entries[0].valid());
    EXPECT_TRUE(r.entries[2].valid());
    EXPECT_EQ(r.entries[2].object, make_box("b", {5, 6, 7, 8}));
    const ParsedEntry& bad = r.entries[1];
    EXPECT_EQ(bad.reason, DropReason::kInvalidUtf8) << drop_reason_name(bad.reason);
    EXPECT_TRUE(bad.complete);
    EXPECT_EQ(bad.chars.record.begin, head.size());
    EXPECT_EQ(bad.chars.record.end, head.size() + c.entry.size());
    EXPECT_NE(bad.detail.find("at byte " + std::to_string(head.size() + c.bad_offset)), std::string::npos)
        << bad.detail;
    EXPECT_EQ(r.append_cut, text.size() - 2);  // after the last entry: nothing becomes FN wrongly
  }
  // The invalid entry last: still complete, the cut is after it; truncation after it keeps it.
  const std::string bad_last = head + d + "\xff\", \"bbox_2d\": " + c4 + "}";
  ParseResult r = parse_text(bad_last + "]}");
  EXPECT_EQ(r.status, RolloutStatus::kComplete);
  ASSERT_EQ(r.num_complete, 2u);
  EXPECT_EQ(r.append_cut, bad_last.size());
  r = parse_text(bad_last + ", {\"desc\": \"x");
  EXPECT_EQ(r.status, RolloutStatus::kTruncated);
  ASSERT_EQ(r.entries.size(), 3u);
  EXPECT_EQ(r.entries[1].reason, DropReason::kInvalidUtf8);
  EXPECT_EQ(r.entries[2].reason, DropReason::kTruncated);
  EXPECT_EQ(r.append_cut, bad_last.size());
  // Valid multi-byte characters are not flagged (control).
  EXPECT_EQ(parse_text(head + d + "\xe4\xb8\xad\xf0\x9f\x98\x80\", \"bbox_2d\": " + c4 + "}]}").num_valid(), 2u);
  // Bad bytes between entries are garbage between entries, not an entry.
  r = parse_text(head.substr(0, head.size() - 2) + ", \xff" + last + "]}");
  EXPECT_EQ(r.status, RolloutStatus::kMalformed);
  EXPECT_EQ(r.num_complete, 1u);
}

TEST(ParseText, TopLevelStructure) {
  struct Case {
    std::string text;
    RolloutStatus status;
    size_t num_valid;
    bool has_prefix;
  };
  const std::string e = R"({"desc": "a", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]})";
  for (const Case& c : std::vector<Case>{
           {R"({"objects": []})", RolloutStatus::kComplete, 0, true},
           {" \n{ \"objects\" :[ ]} \n", RolloutStatus::kComplete, 0, true},
           {R"({"objects":[)" + e + "," + e + "]}", RolloutStatus::kComplete, 2, true},
           {R"({"objects": [)" + e + "]}<|im_end|>trailing ignored", RolloutStatus::kComplete, 1, true},
           {R"({"objects": [)" + e + "]} extra", RolloutStatus::kMalformed, 1, true},
           {R"({"objects": [)" + e + R"(], "more": 1})", RolloutStatus::kMalformed, 1, true},
           {R"({"objects": [)" + e + ", ]}", RolloutStatus::kMalformed, 1, true},
           {R"({"objects": [)" + e + " " + e + "]}", RolloutStatus::kMalformed, 1, true},
           {R"({"objects": [)" + e + R"(, "text"]})", RolloutStatus::kMalformed, 1, true},
           {R"({"objects": [)" + e + "]", RolloutStatus::kTruncated, 1, true},
           {R"({"objects": [)" + e + ",", RolloutStatus::kTruncated, 1, true},
           {R"({"objects": [)", RolloutStatus::kTruncated, 0, true},
           {R"({"obj)", RolloutStatus::kNoPrefix, 0, false},
           {"", RolloutStatus::kNoPrefix, 0, false},
           {"```json\n{\"objects\": []}\n```", RolloutStatus::kNoPrefix, 0, false},
           {"[" + e + "]", RolloutStatus::kNoPrefix, 0, false},
           {R"({"objects": {}})", RolloutStatus::kNoPrefix, 0, false},
           {R"({"boxes": []})", RolloutStatus::kNoPrefix, 0, false},
       }) {
    SCOPED_TRACE(c.text);
    const ParseResult r = parse_text(c.text);
    EXPECT_EQ(r.status, c.status) << rollout_status_name(r.status) << " " << r.error;
    EXPECT_EQ(r.num_valid(), c.num_valid);
    EXPECT_EQ(r.has_prefix, c.has_prefix);
    EXPECT_EQ(r.error.empty(), c.status == RolloutStatus::kComplete);
  }
  EXPECT_NE(parse_text(R"({"obj)").error.find("text ends inside"), std::string::npos);
}

TEST(ParseText, StringsEscapesAndNesting) {
  const Object tricky = make_box("a } ] { [ \" \\ \" ]} \n", {1, 2, 3, 4});
  const AnswerText a = render_text({tricky, black_cat_gt()}, FieldOrder::kDescFirst);
  const ParseResult r = parse_text(a.text);
  ASSERT_EQ(r.status, RolloutStatus::kComplete) << r.error;
  EXPECT_EQ(r.valid_objects(), (std::vector<Object>{tricky, black_cat_gt()}));
  // Escaped forms are decoded: \u00e9, a surrogate pair, \/.
  const ParseResult u = parse_text(
      R"({"objects": [{"desc": "caf\u00e9 \ud83d\ude00 a\/b", "bbox_2d": [[<|coord_1|>, <|coord_2|>], [<|coord_3|>, <|coord_4|>]]}]})");
  ASSERT_EQ(u.num_valid(), 1u) << u.entries[0].detail;
  EXPECT_EQ(u.entries[0].object.desc, "café 😀 a/b");
  EXPECT_EQ(u.entries[0].object.bins, (std::vector<int>{1, 2, 3, 4}));  // flattened
  // Deep nesting inside an extra value is bounded, not a stack overflow.
  const std::string deep = R"({"objects": [{"desc": "a", "x": )" + std::string(5000, '[') +
                           std::string(5000, ']') + "}]}";
  const ParseResult d = parse_text(deep);
  ASSERT_EQ(d.entries.size(), 1u);
  EXPECT_EQ(d.entries[0].reason, DropReason::kMalformedJson);
}

TEST(ParseText, TruncatedAtEveryByteKeepsExactlyTheCompleteObjects) {
  std::mt19937 rng(7);
  std::vector<Object> objs = {make_box("a } [ \"x\"", {1, 2, 3, 4}), black_cat_gt()};
  for (int i = 0; i < 3; ++i) objs.push_back(random_object(rng));
  for (FieldOrder order : {FieldOrder::kDescFirst, FieldOrder::kGeometryFirst}) {
    const AnswerText a = render_text(objs, order);
    for (size_t cut = 0; cut <= a.text.size(); ++cut) {
      const ParseResult r = parse_text(std::string_view(a.text).substr(0, cut));
      size_t complete = 0;
      while (complete < objs.size() && a.objects[complete].record.end <= cut) ++complete;
      ASSERT_EQ(r.valid_objects(), std::vector<Object>(objs.begin(), objs.begin() + complete)) << cut;
      ASSERT_EQ(r.num_complete, complete);
      ASSERT_EQ(r.has_prefix, cut >= kAnswerHead.size());
      if (r.has_prefix) {
        ASSERT_EQ(r.append_cut, complete ? a.objects[complete - 1].record.end : kAnswerHead.size());
      }
      ASSERT_EQ(r.status == RolloutStatus::kComplete, cut == a.text.size());
    }
  }
}

TEST(ParseText, RandomRoundTrips) {
  std::mt19937 rng(2024);
  for (int trial = 0; trial < 3000; ++trial) {
    const std::vector<Object> objs = random_objects(rng, 60);
    const FieldOrder order = trial % 2 ? FieldOrder::kGeometryFirst : FieldOrder::kDescFirst;
    const AnswerText a = render_text(objs, order);
    const ParseResult r = parse_text(a.text);
    ASSERT_EQ(r.status, RolloutStatus::kComplete) << a.text << "\n" << r.error;
    ASSERT_EQ(r.entries.size(), objs.size());
    for (size_t i = 0; i < objs.size(); ++i) {
      ASSERT_TRUE(r.entries[i].valid()) << r.entries[i].detail << "\n" << a.text;
      ASSERT_EQ(r.entries[i].object, objs[i]);
      ASSERT_EQ(r.entries[i].chars.record.begin, a.objects[i].record.begin);
      ASSERT_EQ(r.entries[i].chars.record.end, a.objects[i].record.end);
      ASSERT_EQ(r.entries[i].chars.desc.begin, a.objects[i].desc.begin);
      ASSERT_EQ(r.entries[i].chars.desc.end, a.objects[i].desc.end);
      ASSERT_EQ(r.entries[i].chars.coords.size(), a.objects[i].coords.size());
    }
  }
}

}  // namespace
