#include "pool/code_address.hpp"

#include <link.h>

#include <algorithm>

namespace ferry::detail {

std::vector<LoadedModule> loaded_modules() {
  std::vector<LoadedModule> modules;
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        LoadedModule module;
        module.name = info->dlpi_name ? info->dlpi_name : "";
        module.base = info->dlpi_addr;
        module.start = UINT64_MAX;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& segment = info->dlpi_phdr[i];
          if (segment.p_type != PT_LOAD) continue;
          module.start = std::min<std::uint64_t>(module.start, info->dlpi_addr + segment.p_vaddr);
          module.end = std::max<std::uint64_t>(module.end,
                                               info->dlpi_addr + segment.p_vaddr + segment.p_memsz);
        }
        if (module.start < module.end)
          static_cast<std::vector<LoadedModule>*>(data)->push_back(std::move(module));
        return 0;
      },
      &modules);
  return modules;
}

AddressTranslation::AddressTranslation(const std::vector<LoadedModule>& parent_modules)
    : identity_(false) {
  std::vector<LoadedModule> local = loaded_modules();
  for (const LoadedModule& parent : parent_modules) {
    // The first of a name: the program comes first, and its name is empty.
    auto same = std::find_if(local.begin(), local.end(), [&](const LoadedModule& module) {
      return module.name == parent.name;
    });
    if (same != local.end()) ranges_.push_back({parent.start, parent.end, parent.base, same->base});
  }
}

std::optional<std::uintptr_t> AddressTranslation::to_local(std::uint64_t parent_address) const {
  if (identity_) return static_cast<std::uintptr_t>(parent_address);
  for (const Range& range : ranges_)
    if (parent_address >= range.start && parent_address < range.end)
      return static_cast<std::uintptr_t>(parent_address - range.parent_base + range.local_base);
  return std::nullopt;
}

}  // namespace ferry::detail
