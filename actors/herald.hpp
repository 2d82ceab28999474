// Kept for applications written against it: the same as
// #include <herald/herald.hpp>.
#pragma once

#include "herald/herald.hpp"
