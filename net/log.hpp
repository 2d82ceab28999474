// A minimal leveled logger: one line per event on stderr. The level comes
// from the HERALD_LOG environment variable (error, warn, info, debug;
// default info) or from `set_log_level`.
#pragma once

#include <sstream>
#include <string_view>

namespace herald {

/// Log levels, most severe first.
enum class log_level { error = 0, warn = 1, info = 2, debug = 3 };

/// Changes the level at run time.
void set_log_level(log_level lvl) noexcept;
/// True when messages of `lvl` are printed.
bool log_enabled(log_level lvl) noexcept;
/// Prints one line (with a timestamp and the level).
void log_line(log_level lvl, std::string_view text);

} // namespace herald

/// Logs the streamed arguments at `lvl` when that level is enabled.
#define HERALD_LOG(lvl, args)                                                  \
  do {                                                                         \
    if (::herald::log_enabled(::herald::log_level::lvl)) {                     \
      std::ostringstream herald_log_os_;                                       \
      herald_log_os_ << args;                                                  \
      ::herald::log_line(::herald::log_level::lvl, herald_log_os_.str());      \
    }                                                                          \
  } while (false)
