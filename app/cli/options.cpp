#include "herald/app/cli/options.hpp"

#include <cstdlib>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>

namespace po = boost::program_options;

namespace herald::cli {

namespace {

// Collects every occurrence, so that an option given twice takes its last
// value (a scalar po::value refuses the second one).
using occurrences = std::vector<std::string>;

// Boost's default width of the option list.
constexpr std::size_t line_length = 80;

// Stray arguments land here and are refused by name.
constexpr const char* positional = "unexpected-argument";

std::string described(const option& opt) {
  auto text = opt.help();
  auto def = opt.default_text();
  if (!def.empty())
    text += (text.empty() ? "(default " : " (default ") + def + ")";
  return text;
}

// The options as Boost.Program_options sees them (the targets stay here).
po::options_description
visible(const std::vector<std::unique_ptr<option>>& declared) {
  po::options_description desc{"options", line_length};
  desc.add_options()("help,h", "print this text and exit");
  for (const auto& opt : declared) {
    auto* sem = po::value<occurrences>();
    if (opt->is_flag())
      sem->zero_tokens();
    else
      sem->value_name(opt->value_name());
    desc.add_options()(opt->name().c_str(), sem, described(*opt).c_str());
  }
  return desc;
}

} // namespace

class options::flag_option final : public option {
public:
  flag_option(std::string name, std::string help, bool& target)
    : option(std::move(name), "", std::move(help)), target_(&target) {}

  std::optional<std::string> assign(std::string_view) override {
    *target_ = true;
    return std::nullopt;
  }

  std::string default_text() const override { return {}; }

private:
  bool* target_;
};

options::options(std::string program, std::string summary)
  : program_(std::move(program)), summary_(std::move(summary)) {}

options::~options() = default;

void options::flag(std::string name, bool& target, std::string help) {
  declared_.push_back(
    std::make_unique<flag_option>(std::move(name), std::move(help), target));
}

std::string options::help() const {
  std::ostringstream text;
  text << "usage: " << program_ << " [options]\n";
  // The summary wrapped at the options' width.
  std::istringstream words{summary_};
  std::string word;
  std::size_t column = 0;
  while (words >> word) {
    if (column > 0 && column + 1 + word.size() > line_length) {
      text << '\n';
      column = 0;
    }
    text << (column > 0 ? " " : "") << word;
    column += (column > 0 ? 1 : 0) + word.size();
  }
  text << (column > 0 ? "\n\n" : "\n") << visible(declared_);
  // Boost leaves a blank where it wraps a description.
  std::string out;
  std::istringstream lines{text.str()};
  for (std::string line; std::getline(lines, line);) {
    line.erase(line.find_last_not_of(' ') + 1);
    out.append(line).push_back('\n');
  }
  return out;
}

std::optional<int> options::parse(int argc, const char* const* argv,
                                  std::ostream& out, std::ostream& err) {
  auto fail = [&](const std::string& what) {
    err << program_ << ": " << what << " (see " << program_ << " --help)"
        << std::endl;
    return usage_error;
  };
  po::variables_map vm;
  try {
    auto all = visible(declared_);
    all.add_options()(positional, po::value<occurrences>());
    po::positional_options_description pos;
    pos.add(positional, -1);
    // No allow_guessing: "--max" is unknown, not a prefix of some option.
    using namespace po::command_line_style;
    auto style = default_style & ~allow_guessing;
    po::store(po::command_line_parser(argc, argv)
                .options(all)
                .positional(pos)
                .style(style)
                .run(),
              vm);
  } catch (const po::error& e) {
    return fail(e.what());
  }
  if (vm.count("help") > 0) {
    out << help() << std::flush;
    return 0;
  }
  if (auto i = vm.find(positional); i != vm.end())
    return fail("unexpected argument '" + i->second.as<occurrences>().front()
                + "'");
  for (auto& opt : declared_) {
    auto i = vm.find(opt->name());
    if (i == vm.end())
      continue;
    const auto& given = i->second.as<occurrences>();
    auto text = given.empty() ? std::string{} : given.back();
    if (auto expected = opt->assign(text))
      return fail("the argument ('" + text + "') for option '--" + opt->name()
                  + "' is invalid: expected " + *expected);
  }
  return std::nullopt;
}

void options::parse_or_exit(int argc, const char* const* argv) {
  if (auto status = parse(argc, argv, std::cout, std::cerr))
    std::exit(*status);
}

} // namespace herald::cli
