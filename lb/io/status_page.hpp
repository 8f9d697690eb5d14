// The status page's files (lb/io/status_page/), built into lbd by embed.cmake: a director
// reaches no CDN, and nothing is installed or found at run time.
#pragma once

#include <string>
#include <vector>

namespace lbd {

struct StatusPageFile {
  const char* path;          // "/", "/lbd.js", "/lbd.css"
  const char* content_type;
  std::string bytes;
};
const std::vector<StatusPageFile>& status_page_files();

}  // namespace lbd
