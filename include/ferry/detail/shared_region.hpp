// Internal to ferry's shared objects (lock.hpp, semaphore.hpp, shared_value.hpp,
// ...): a mapping of shared memory, anonymous or named, and the header every
// ferry object in one starts with. Not an API: it may change at any time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace ferry::detail {

// What a shared object is. A process attaching by name is refused when the
// name holds another kind, so a Semaphore is never read as a Lock.
enum class SharedKind : std::uint32_t {
  lock = 1,
  rlock,
  semaphore,
  bounded_semaphore,
  event,
  condition,
  barrier,
  value,
  array,
};

// A mapping of shared memory, shared by every copy of the handle: the memory
// stays mapped while one lives (a lock held by an exception keeps its lock's
// memory). A named mapping made by create() owns its name: the last handle
// removes it from /dev/shm in the process that created it, unless
// keep_name() was called; forked children never remove it.
class SharedRegion {
 public:
  SharedRegion() = default;
  // Shared with the processes forked after it is made; it has no name.
  static SharedRegion anonymous(std::size_t size);
  // A new name in /dev/shm; refused when the name exists.
  static SharedRegion create(const std::string& name, std::size_t size);
  // An existing name; the mapping has the size the name has (none while its
  // creator has not sized it yet).
  static SharedRegion attach(const std::string& name);

  std::byte* data() const;
  std::size_t size() const;
  const std::string& name() const;  // empty when anonymous
  bool empty() const { return mapping_ == nullptr; }
  // Removes the name now (any process may); the memory stays mapped.
  void unlink();
  // The name outlives the handles of this process: someone unlinks it later.
  void keep_name();
  void reset() { mapping_.reset(); }
  // Unmaps the memory now, for every copy of this handle; the name stays
  // owned as before.
  void unmap();

 private:
  struct Mapping;
  explicit SharedRegion(std::shared_ptr<Mapping> mapping) : mapping_(std::move(mapping)) {}
  std::shared_ptr<Mapping> mapping_;
};

// How a handle comes to its object.
enum class OpenMode { anonymous, create, attach };

// What a shared object looks like; an attaching process must agree.
struct ObjectSpec {
  SharedKind kind;
  std::size_t payload_size;   // bytes after the header (per element for arrays: see below)
  std::size_t payload_align;  // at most 4096
  // Values and arrays: elements after a fixed part of payload_size bytes.
  std::size_t element_size = 0;
  std::size_t element_align = 1;
  std::size_t element_count = 0;  // attach: 0 takes the count the object has
  std::uint64_t type_hash = 0;    // which element type; 0: none
};

struct SharedObject {
  SharedRegion region;
  std::byte* payload = nullptr;   // the fixed part
  std::byte* elements = nullptr;  // values and arrays: the elements
  std::size_t element_count = 0;
};

// Opens a shared object. `initialize` runs on a new object's memory (zeroed)
// before any other process can use it; an attaching process waits (briefly)
// until the creator finished it, and is refused with ferry::Error when the
// name holds something else.
SharedObject open_object(OpenMode mode, const std::string& name, const ObjectSpec& spec,
                         const std::function<void(const SharedObject&)>& initialize);

// A name for an object nobody named: "ferry-<pid>-<random hex>".
std::string fresh_name();

// A stable hash of a type's name, so that a Value<double> does not attach
// to a Value<long> of the same size.
std::uint64_t hash_type_name(const char* name);

// The handle part every shared object has: its name and what to do with it.
class SharedHandle {
 public:
  // The name in /dev/shm; empty for an anonymous object.
  const std::string& name() const { return region_.name(); }
  // Removes the name from /dev/shm now; processes that have the object keep it.
  void unlink() { region_.unlink(); }
  // Keeps the name after this object is gone (the creator's handles remove
  // it by default); then someone must unlink() it.
  void keep_name() { region_.keep_name(); }

 protected:
  SharedHandle() = default;
  explicit SharedHandle(SharedRegion region) : region_(std::move(region)) {}
  SharedRegion region_;
};

}  // namespace ferry::detail
