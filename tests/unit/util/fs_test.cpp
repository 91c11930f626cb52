// fs helpers: atomic writes replace the file and leave no temp file (also when abandoned), reads
// of missing files name the path, relative path resolution.
#include <gtest/gtest.h>

#include "coordexp/util/fs.h"
#include "unit/util/st_test_util.h"

namespace coordexp::util {
namespace {

TEST(Fs, AtomicWriteReadAndResolve) {
  test::TempDir dir;
  const std::string path = dir.file("f.txt");
  write_file_atomic(path, "old");
  write_file_atomic(path, std::string("new\0bytes", 9));
  EXPECT_EQ(read_file(path), std::string("new\0bytes", 9));
  {
    AtomicFileWriter abandoned(path);
    abandoned.write("partial", 7);
    EXPECT_EQ(dir.listing().size(), 2u) << "temp file exists while writing";
    EXPECT_EQ(std::filesystem::path(abandoned.temp_path()).parent_path(), dir.path());
  }
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"f.txt"});
  EXPECT_EQ(read_file(path), std::string("new\0bytes", 9)) << "an abandoned write changes nothing";

  try {
    read_file(dir.file("missing.txt"));
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("missing.txt")), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_file(dir.path().string()), DataError);

  EXPECT_EQ(resolve_relative_to("/a/b/config.yaml", "../c.yaml"), "/a/c.yaml");
  EXPECT_EQ(resolve_relative_to("/a/b/config.yaml", "/abs.yaml"), "/abs.yaml");
  EXPECT_EQ(resolve_relative_to("config.yaml", "base.yaml"), "base.yaml");
}

}  // namespace
}  // namespace coordexp::util
