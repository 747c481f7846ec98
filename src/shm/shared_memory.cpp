#include "ferry/shared_memory.hpp"

#include <fmt/format.h>

#include "ferry/error.hpp"

namespace ferry {

SharedMemory SharedMemory::create(std::size_t size) { return create(detail::fresh_name(), size); }

SharedMemory SharedMemory::create(const std::string& name, std::size_t size) {
  return SharedMemory(detail::SharedRegion::create(name, size), name);
}

SharedMemory SharedMemory::attach(const std::string& name) {
  auto region = detail::SharedRegion::attach(name);
  if (region.size() == 0) throw Error(fmt::format("shared memory '{}' is empty", name));
  return SharedMemory(std::move(region), name);
}

}  // namespace ferry
