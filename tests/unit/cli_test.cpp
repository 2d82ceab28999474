// Unit tests of the programs' command-line parser (app/cli/options.hpp).
#define CAF_SUITE cli

#include "herald/app/cli/options.hpp"

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "caf/test/dsl.hpp"

using namespace std::chrono_literals;

namespace {

// The options of a typical server, and what parsing printed.
struct fixture {
  std::string host = "127.0.0.1";
  long port = 9001;
  std::size_t payload = 1024;
  double duration = 10;
  std::chrono::seconds idle{120};
  std::chrono::milliseconds deadline{10000};
  std::optional<std::chrono::milliseconds> delay;
  std::string mode = "off";
  std::string token;
  bool quiet = false;
  herald::cli::options opts{"prog", "A program to test the parser."};
  std::string out;
  std::string err;

  fixture() {
    opts.add("host", "ADDR", host, "address");
    opts.add("port", "N", port, "port").range(0, 65535);
    opts.add("payload", "BYTES", payload, "largest message").min(1);
    opts.add("duration", "SECS", duration, "measured time").positive();
    opts.add("idle-timeout", "SECS", idle, "idle timeout");
    opts.add("deadline-ms", "MS", deadline, "deadline").range(0, 60000);
    opts.add("delay-ms", "MS", delay, "delay");
    opts.add("deflate", "MODE", mode, "compression")
      .one_of({"off", "shared", "dedicated"});
    opts.add("token", "SECRET", token, "secret");
    opts.flag("quiet", quiet, "no output");
  }

  // Parses "prog args..."; the status, or -1 to go on.
  int parse(std::initializer_list<const char*> args) {
    std::vector<const char*> argv{"prog"};
    argv.insert(argv.end(), args);
    std::ostringstream o;
    std::ostringstream e;
    auto status = opts.parse(static_cast<int>(argv.size()), argv.data(), o, e);
    out = o.str();
    err = e.str();
    return status ? *status : -1;
  }

  // True when the error is one line that names `what`.
  bool one_line_naming(const std::string& what) const {
    return err.find(what) != std::string::npos && err.rfind("prog: ", 0) == 0
           && err.find('\n') == err.size() - 1;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(cli_tests, fixture)

CAF_TEST(no arguments leave the defaults) {
  CAF_CHECK_EQUAL(parse({}), -1);
  CAF_CHECK_EQUAL(host, "127.0.0.1");
  CAF_CHECK_EQUAL(port, 9001);
  CAF_CHECK(!delay);
  CAF_CHECK(!quiet);
  CAF_CHECK_EQUAL(out, "");
  CAF_CHECK_EQUAL(err, "");
}

CAF_TEST(values after a blank or an equals sign) {
  CAF_CHECK_EQUAL(parse({"--host", "::1", "--port=80", "--payload", "7",
                         "--duration=1.5", "--idle-timeout", "0",
                         "--deadline-ms=250", "--delay-ms", "30", "--deflate",
                         "dedicated", "--token=-x", "--quiet"}),
                  -1);
  CAF_CHECK_EQUAL(err, "");
  CAF_CHECK_EQUAL(host, "::1");
  CAF_CHECK_EQUAL(port, 80);
  CAF_CHECK_EQUAL(payload, 7u);
  CAF_CHECK_EQUAL(duration, 1.5);
  CAF_CHECK(idle == 0s);
  CAF_CHECK(deadline == 250ms);
  CAF_CHECK(delay && *delay == 30ms);
  CAF_CHECK_EQUAL(mode, "dedicated");
  CAF_CHECK_EQUAL(token, "-x");
  CAF_CHECK(quiet);
}

CAF_TEST(the last of a repeated option counts) {
  CAF_CHECK_EQUAL(parse(
                    {"--port", "0", "--port", "8080", "--quiet", "--quiet"}),
                  -1);
  CAF_CHECK_EQUAL(port, 8080);
  CAF_CHECK(quiet);
}

CAF_TEST(help lists every option with its default) {
  for (auto flag : {"--help", "-h"}) {
    CAF_CHECK_EQUAL(parse({"--port", "1", flag}), 0);
    CAF_CHECK_EQUAL(err, "");
    CAF_CHECK_EQUAL(out.rfind("usage: prog [options]\n"
                              "A program to test the parser.\n\n",
                              0),
                    0u);
    for (auto line : {"  --host ADDR ", "(default 127.0.0.1)", "  --port N ",
                      "(default 9001)", "(default 120)", "  --delay-ms MS ",
                      "  --quiet ", "(default off)"})
      CAF_CHECK_NOT_EQUAL(out.find(line), std::string::npos);
    // No default for an empty string, an empty optional or a flag.
    CAF_CHECK_NOT_EQUAL(out.find("  --token SECRET        secret\n"),
                        std::string::npos);
    CAF_CHECK_NOT_EQUAL(out.find("  --delay-ms MS         delay\n"),
                        std::string::npos);
    CAF_CHECK_EQUAL(out.find(" \n"), std::string::npos);
  }
}

CAF_TEST(unknown options are refused by name) {
  CAF_CHECK_EQUAL(parse({"--bogus"}), herald::cli::usage_error);
  CAF_CHECK(one_line_naming("'--bogus'"));
  CAF_CHECK_EQUAL(out, "");
  // No guessing from a prefix.
  CAF_CHECK_EQUAL(parse({"--por", "1"}), 2);
  CAF_CHECK(one_line_naming("'--por'"));
  CAF_CHECK_EQUAL(parse({"-x"}), 2);
  CAF_CHECK(one_line_naming("'-x'"));
}

CAF_TEST(stray arguments are refused by name) {
  CAF_CHECK_EQUAL(parse({"--port", "1", "extra"}), 2);
  CAF_CHECK(one_line_naming("'extra'"));
  CAF_CHECK_EQUAL(parse({"--", "after"}), 2);
  CAF_CHECK(one_line_naming("'after'"));
}

CAF_TEST(missing values and values of flags are refused) {
  CAF_CHECK_EQUAL(parse({"--port"}), 2);
  CAF_CHECK(one_line_naming("'--port'"));
  CAF_CHECK_EQUAL(parse({"--quiet=1"}), 2);
  CAF_CHECK(one_line_naming("'--quiet'"));
}

CAF_TEST(malformed numbers are refused with what is expected) {
  struct bad {
    const char* option;
    const char* value;
    const char* expected;
  };
  for (auto [option, value, expected] : {
         bad{"--port", "abc", "a whole number from 0 to 65535"},
         bad{"--port", "12x", "a whole number from 0 to 65535"},
         bad{"--port", "", "a whole number from 0 to 65535"},
         bad{"--port", " 1", "a whole number from 0 to 65535"},
         bad{"--port", "+1", "a whole number from 0 to 65535"},
         bad{"--port", "65536", "a whole number from 0 to 65535"},
         bad{"--port", "99999999999999999999", "a whole number from 0"},
         bad{"--payload", "0", "a whole number of at least 1"},
         bad{"--payload", "-1", "a whole number of at least 1"},
         bad{"--duration", "0", "a number greater than 0"},
         bad{"--duration", "inf", "a number greater than 0"},
         bad{"--duration", "nan", "a number greater than 0"},
         bad{"--idle-timeout", "-1", "a whole number of at least 0"},
         bad{"--idle-timeout", "1.5", "a whole number of at least 0"},
         bad{"--deadline-ms", "60001", "a whole number from 0 to 60000"},
         bad{"--delay-ms", "soon", "a whole number of at least 0"},
         bad{"--deflate", "maybe", "one of off, shared, dedicated"},
       }) {
    CAF_MESSAGE(option << " " << value);
    CAF_CHECK_EQUAL(parse({option, value}), 2);
    CAF_CHECK(one_line_naming(std::string{"'"} + option + "'"));
    CAF_CHECK(one_line_naming(std::string{"('"} + value + "')"));
    CAF_CHECK(one_line_naming(expected));
  }
  // A refused value leaves the target alone.
  CAF_CHECK_EQUAL(port, 9001);
  CAF_CHECK(idle == 120s);
  CAF_CHECK(!delay);
  CAF_CHECK_EQUAL(mode, "off");
}

CAF_TEST_FIXTURE_SCOPE_END()
