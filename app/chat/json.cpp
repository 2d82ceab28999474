// Boost.JSON's implementation, compiled once for the chat app (header-only
// mode, since Debian's Boost is used without its compiled json library).
#include <boost/json/src.hpp>
