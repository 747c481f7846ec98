// Code addresses that another process of the same program can resolve.
//
// A pool names a task by the address of its function. A forked worker has
// the parent's memory, so the address is the same there. A spawned worker
// runs the same program afresh, loaded elsewhere (address space layout
// randomization): it translates each address through the module (the
// program, or a library loaded at start) that holds it in the parent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ferry::detail {

struct LoadedModule {
  std::string name;         // the path the loader used; empty for the program itself
  std::uint64_t base = 0;   // the load bias: add to the module's own addresses
  std::uint64_t start = 0;  // the range its segments occupy
  std::uint64_t end = 0;
  template <class Fields>
  void ferry_fields(Fields&& fields) {
    fields(name, base, start, end);
  }
};

// The modules loaded in this process now.
std::vector<LoadedModule> loaded_modules();

class AddressTranslation {
 public:
  // The same addresses (a forked worker).
  AddressTranslation() = default;
  // From the parent's modules to this process's, matched by name.
  explicit AddressTranslation(const std::vector<LoadedModule>& parent_modules);

  // nullopt when no module of this process holds it.
  std::optional<std::uintptr_t> to_local(std::uint64_t parent_address) const;

 private:
  struct Range {
    std::uint64_t start, end;
    std::uint64_t parent_base, local_base;
  };
  bool identity_ = true;
  std::vector<Range> ranges_;
};

}  // namespace ferry::detail
