// The command line of every Herald program (app/, bench/, the test servers):
// each declares its options on a herald::cli::options and calls
// parse_or_exit. All of them then answer alike: --help (or -h) prints the
// generated option list and exits 0; an unknown option, a missing or
// malformed value or a stray argument prints one line naming it to stderr
// and exits 2; "--name VALUE" and "--name=VALUE" both work; an option given
// twice takes its last value (the test helpers add --port 0 before a
// test's own arguments).
//
// Boost.Program_options splits the command line and finds unknown options;
// this file turns values into typed targets with range checks. Not CAF's
// own parser (caf::actor_system_config): CAF 0.17 takes long options only
// as "--name=VALUE" (every script here writes "--name VALUE"), lists its
// own caf.* options in the help, and the load clients in bench/ link no CAF.
#pragma once

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <iosfwd>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace herald::cli {

/// The exit status of a command line the program cannot take.
inline constexpr int usage_error = 2;

/// One declared option (see options::add and options::flag).
class option {
public:
  option(std::string name, std::string value_name, std::string help)
    : name_(std::move(name)), value_name_(std::move(value_name)),
      help_(std::move(help)) {}
  virtual ~option() = default;
  option(const option&) = delete;
  option& operator=(const option&) = delete;

  /// The long name, without the leading "--".
  const std::string& name() const noexcept { return name_; }
  /// What the help shows for the value ("N", "ADDR"); empty for a flag.
  const std::string& value_name() const noexcept { return value_name_; }
  /// The help text, without the default.
  const std::string& help() const noexcept { return help_; }
  /// True when the option takes no value.
  bool is_flag() const noexcept { return value_name_.empty(); }
  /// Stores `text` in the target; on a malformed value returns what a valid
  /// one looks like and leaves the target as it was.
  virtual std::optional<std::string> assign(std::string_view text) = 0;
  /// The target's value before parsing, shown by --help; empty: none.
  virtual std::string default_text() const = 0;

private:
  std::string name_;
  std::string value_name_;
  std::string help_;
};

namespace detail {

template <class T>
struct is_duration : std::false_type {};

template <class Rep, class Period>
struct is_duration<std::chrono::duration<Rep, Period>>
  : std::bool_constant<std::is_integral_v<Rep>> {};

// What a value is counted in: durations in their unit.
template <class T>
struct count_of {
  using type = T;
};

template <class Rep, class Period>
struct count_of<std::chrono::duration<Rep, Period>> {
  using type = Rep;
};

template <> // strings have no count; the type only fills the members
struct count_of<std::string> {
  using type = long long;
};

template <class T>
struct unwrap_optional {
  using type = T;
  static constexpr bool is_optional = false;
};

template <class T>
struct unwrap_optional<std::optional<T>> {
  using type = T;
  static constexpr bool is_optional = true;
};

template <class T>
concept integer = std::is_integral_v<T> && !std::same_as<T, bool>;

template <class T>
concept number = integer<T> || std::is_floating_point_v<T>;

// Numbers as the help and the errors show them.
template <number T>
std::string to_text(T x) {
  if constexpr (integer<T>) {
    return std::to_string(x);
  } else {
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, static_cast<double>(x));
    return std::string{buf, res.ptr};
  }
}

// The whole of `text` as a T, or nothing.
template <number T>
std::optional<T> from_text(std::string_view text) {
  T x{};
  auto first = text.data();
  auto last = first + text.size();
  // from_chars takes no '+'; a leading '-' of an unsigned type fails.
  auto res = std::from_chars(first, last, x);
  if (text.empty() || res.ec != std::errc{} || res.ptr != last)
    return std::nullopt;
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(x))
      return std::nullopt;
  }
  return x;
}

} // namespace detail

/// An option with a value, stored into a `T&` of the program: a string, a
/// number, a std::chrono::duration given as a whole count of its unit, or a
/// std::optional of one of them (empty: the option was not given).
template <class T>
class value final : public option {
public:
  /// What the value is: T, or U of std::optional<U>.
  using element_type = typename detail::unwrap_optional<T>::type;

  static_assert(
    std::same_as<
      element_type,
      std::
        string> || detail::number<element_type> || detail::is_duration<element_type>::value,
    "herald::cli::value: a string, a number or a duration");

  /// What range() and min() take: the number, or the duration's count.
  using count_type = typename detail::count_of<element_type>::type;

  static constexpr bool is_string = std::same_as<element_type, std::string>;

  value(std::string name, std::string value_name, std::string help, T& target)
    : option(std::move(name), std::move(value_name), std::move(help)),
      target_(&target) {
    // A negative timeout or deadline means nothing here.
    if constexpr (detail::is_duration<element_type>::value)
      lo_ = 0;
  }

  /// Accepts only numbers from `lo` to `hi` (durations: counts).
  value& range(count_type lo, count_type hi) requires(!is_string) {
    lo_ = lo;
    hi_ = hi;
    return *this;
  }

  /// Accepts only numbers of at least `lo` (durations: counts).
  value& min(count_type lo) requires(!is_string) {
    lo_ = lo;
    return *this;
  }

  /// Accepts only numbers greater than zero.
  value& positive() requires(!is_string) {
    positive_ = true;
    return *this;
  }

  /// Accepts only these words.
  value& one_of(std::vector<std::string> words) requires is_string {
    words_ = std::move(words);
    return *this;
  }

  std::optional<std::string> assign(std::string_view text) override {
    if constexpr (is_string) {
      if (words_.empty()
          || std::find(words_.begin(), words_.end(), text) != words_.end()) {
        *target_ = std::string{text};
        return std::nullopt;
      }
      std::string expected = "one of";
      for (std::size_t i = 0; i < words_.size(); ++i)
        expected.append(i == 0 ? " " : ", ").append(words_[i]);
      return expected;
    } else {
      auto x = detail::from_text<count_type>(text);
      if (!x || *x < lo_ || *x > hi_ || (positive_ && !(*x > 0)))
        return expectation();
      *target_ = element_type{*x};
      return std::nullopt;
    }
  }

  std::string default_text() const override {
    const element_type* x;
    if constexpr (detail::unwrap_optional<T>::is_optional) {
      if (!target_->has_value())
        return {};
      x = &**target_;
    } else {
      x = target_;
    }
    if constexpr (is_string)
      return *x;
    else if constexpr (detail::is_duration<element_type>::value)
      return detail::to_text(x->count());
    else
      return detail::to_text(*x);
  }

private:
  using limits = std::numeric_limits<count_type>;

  std::string expectation() const {
    std::string out =
      detail::integer<count_type> ? "a whole number" : "a number";
    auto has_lo = lo_ > limits::lowest() || !limits::is_signed;
    auto has_hi = hi_ < limits::max();
    if (positive_ && lo_ <= 0)
      return out + " greater than 0"
             + (has_hi ? " and at most " + detail::to_text(hi_) : "");
    if (has_lo && has_hi)
      return out + " from " + detail::to_text(lo_) + " to "
             + detail::to_text(hi_);
    if (has_lo)
      return out + " of at least " + detail::to_text(lo_);
    if (has_hi)
      return out + " of at most " + detail::to_text(hi_);
    return out;
  }

  T* target_;
  count_type lo_ = limits::lowest();
  count_type hi_ = limits::max();
  bool positive_ = false;
  std::vector<std::string> words_;
};

/// A program's options.
class options {
public:
  /// `program` names the program in the help and in errors; `summary`
  /// (may be empty) follows the usage line of the help.
  options(std::string program, std::string summary);
  ~options();
  options(const options&) = delete;
  options& operator=(const options&) = delete;

  /// Declares --name VALUE, stored into `target`, whose current value the
  /// help shows as the default (strings: unless empty).
  template <class T>
  value<T>& add(std::string name, std::string value_name, T& target,
                std::string help) {
    auto ptr =
      std::make_unique<value<T>>(std::move(name), std::move(value_name),
                                 std::move(help), target);
    auto& ref = *ptr;
    declared_.push_back(std::move(ptr));
    return ref;
  }

  /// Declares --name without a value: sets `target` when given.
  void flag(std::string name, bool& target, std::string help);

  /// Parses the command line into the targets. Returns nothing when the
  /// program should go on, else the status to exit with: 0 after --help
  /// (printed to `out`), usage_error after a one-line error on `err`.
  std::optional<int> parse(int argc, const char* const* argv, std::ostream& out,
                           std::ostream& err);

  /// parse() with stdout and stderr; exits unless the program goes on.
  void parse_or_exit(int argc, const char* const* argv);

  /// The generated help text.
  std::string help() const;

private:
  class flag_option;
  std::string program_;
  std::string summary_;
  std::vector<std::unique_ptr<option>> declared_;
};

} // namespace herald::cli
