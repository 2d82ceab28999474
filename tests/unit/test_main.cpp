// CAF's test runner main for every unit test binary (linked in by
// herald_unit_test in CMakeLists.txt; exactly once per binary).
#include "caf/test/unit_test_impl.hpp"
