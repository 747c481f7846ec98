#include "ferry/detail/shared_region.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>
#include <thread>

#include "ferry/error.hpp"

namespace ferry::detail {
namespace {

// The layout every ferry object in shared memory starts with. A process
// attaching by name checks it before it touches the object: a name holding
// another kind, another element type or an older layout is refused.
struct ObjectHeader {
  std::atomic<std::uint32_t> ready;  // kReady once the creator finished the object
  std::uint32_t layout_version;
  std::uint32_t kind;
  std::uint32_t payload_size;
  std::uint64_t element_size;
  std::uint64_t element_count;
  std::uint64_t type_hash;
  std::uint64_t elements_offset;
};
constexpr std::uint32_t kReady = 0x79727266;  // "ferry"
constexpr std::uint32_t kLayoutVersion = 1;
constexpr std::size_t kHeaderSize = 64;
static_assert(sizeof(ObjectHeader) <= kHeaderSize);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

std::size_t round_up(std::size_t n, std::size_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

void check_name(const std::string& name) {
  bool valid = !name.empty() && name.size() <= 200 && name != "." && name != "..";
  for (char c : name) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '-';
    valid = valid && allowed;
  }
  if (!valid)
    throw Error(fmt::format(
        "'{}' is not a shared memory name: use 1 to 200 letters, digits, '.', '_' or '-'", name));
}

const char* kind_name(std::uint32_t kind) {
  switch (static_cast<SharedKind>(kind)) {
    case SharedKind::lock:
      return "a Lock";
    case SharedKind::rlock:
      return "an RLock";
    case SharedKind::semaphore:
      return "a Semaphore";
    case SharedKind::bounded_semaphore:
      return "a BoundedSemaphore";
    case SharedKind::event:
      return "an Event";
    case SharedKind::condition:
      return "a Condition";
    case SharedKind::barrier:
      return "a Barrier";
    case SharedKind::value:
      return "a Value";
    case SharedKind::array:
      return "an Array";
  }
  return "not a ferry object";
}

}  // namespace

struct SharedRegion::Mapping {
  std::byte* data = nullptr;
  std::size_t size = 0;
  std::string name;
  pid_t creator = 0;  // the process that removes the name, or 0
  dev_t device = 0;   // which file the name was, so that a new file of the same name is left alone
  ino_t inode = 0;

  ~Mapping() {
    if (data != nullptr && size > 0) ::munmap(data, size);
    if (creator != 0 && creator == ::getpid()) {
      struct stat now {};
      std::string path = "/dev/shm/" + name;
      if (::stat(path.c_str(), &now) == 0 && now.st_dev == device && now.st_ino == inode)
        ::shm_unlink(("/" + name).c_str());
    }
  }
};

SharedRegion SharedRegion::anonymous(std::size_t size) {
  auto mapping = std::make_shared<Mapping>();
  void* data = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED)
    throw Error(
        fmt::format("cannot map {} bytes of shared memory: {}", size, std::strerror(errno)));
  mapping->data = static_cast<std::byte*>(data);
  mapping->size = size;
  return SharedRegion(std::move(mapping));
}

SharedRegion SharedRegion::create(const std::string& name, std::size_t size) {
  check_name(name);
  if (size == 0) throw Error(fmt::format("shared memory '{}' needs a size above 0", name));
  int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST)
    throw Error(fmt::format("shared memory '{}' already exists", name));
  if (fd < 0)
    throw Error(fmt::format("cannot create shared memory '{}': {}", name, std::strerror(errno)));
  auto mapping = std::make_shared<Mapping>();
  mapping->name = name;
  struct stat file {};
  ::fstat(fd, &file);
  mapping->creator = ::getpid();
  mapping->device = file.st_dev;
  mapping->inode = file.st_ino;
  // From here the mapping's destructor removes the name if anything fails.
  if (::ftruncate(fd, static_cast<off_t>(size)) < 0) {
    int error = errno;
    ::close(fd);
    throw Error(fmt::format("cannot size shared memory '{}' to {} bytes: {}", name, size,
                            std::strerror(error)));
  }
  void* data = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int error = errno;
  ::close(fd);
  if (data == MAP_FAILED)
    throw Error(fmt::format("cannot map shared memory '{}': {}", name, std::strerror(error)));
  mapping->data = static_cast<std::byte*>(data);
  mapping->size = size;
  return SharedRegion(std::move(mapping));
}

SharedRegion SharedRegion::attach(const std::string& name) {
  check_name(name);
  int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0 && errno == ENOENT) throw Error(fmt::format("no shared memory is named '{}'", name));
  if (fd < 0)
    throw Error(fmt::format("cannot open shared memory '{}': {}", name, std::strerror(errno)));
  struct stat file {};
  if (::fstat(fd, &file) < 0) {
    int error = errno;
    ::close(fd);
    throw Error(fmt::format("cannot open shared memory '{}': {}", name, std::strerror(error)));
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->name = name;
  auto size = static_cast<std::size_t>(file.st_size);
  if (size == 0) {  // its creator has not sized it yet: nothing to map
    ::close(fd);
    return SharedRegion(std::move(mapping));
  }
  void* data = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int error = errno;
  ::close(fd);
  if (data == MAP_FAILED)
    throw Error(fmt::format("cannot map shared memory '{}': {}", name, std::strerror(error)));
  mapping->data = static_cast<std::byte*>(data);
  mapping->size = size;
  return SharedRegion(std::move(mapping));
}

std::byte* SharedRegion::data() const { return mapping_ ? mapping_->data : nullptr; }
std::size_t SharedRegion::size() const { return mapping_ ? mapping_->size : 0; }

const std::string& SharedRegion::name() const {
  static const std::string kNone;
  return mapping_ ? mapping_->name : kNone;
}

void SharedRegion::unlink() {
  if (!mapping_ || mapping_->name.empty()) return;
  if (::shm_unlink(("/" + mapping_->name).c_str()) < 0 && errno != ENOENT)
    throw Error(
        fmt::format("cannot unlink shared memory '{}': {}", mapping_->name, std::strerror(errno)));
  mapping_->creator = 0;
}

void SharedRegion::unmap() {
  if (!mapping_ || mapping_->data == nullptr) return;
  ::munmap(mapping_->data, mapping_->size);
  mapping_->data = nullptr;
  mapping_->size = 0;
}

void SharedRegion::keep_name() {
  if (mapping_) mapping_->creator = 0;
}

SharedObject open_object(OpenMode mode, const std::string& name, const ObjectSpec& spec,
                         const std::function<void(const SharedObject&)>& initialize) {
  std::size_t payload_offset = round_up(kHeaderSize, std::max<std::size_t>(spec.payload_align, 8));
  std::size_t elements_offset =
      round_up(payload_offset + spec.payload_size, std::max<std::size_t>(spec.element_align, 8));
  SharedObject object;
  if (mode == OpenMode::attach) {
    object.region = SharedRegion::attach(name);
    // Wait (a bounded while) for a creator in another process to finish it.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    const ObjectHeader* header = nullptr;
    for (int attempt = 0;; ++attempt) {
      if (object.region.size() >= kHeaderSize) {
        header = reinterpret_cast<const ObjectHeader*>(object.region.data());
        std::uint32_t ready = header->ready.load(std::memory_order_acquire);
        if (ready == kReady) break;
        if (ready != 0) attempt = 2000;  // bytes of something else: no use waiting
      }
      if (attempt >= 2000 || std::chrono::steady_clock::now() > deadline)
        throw Error(
            fmt::format("shared memory '{}' is not a ferry object (or its creator died "
                        "before it was ready)",
                        name));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (object.region.size() < kHeaderSize) object.region = SharedRegion::attach(name);
    }
    if (header->layout_version != kLayoutVersion)
      throw Error(fmt::format("'{}' was made by another version of ferry (layout {}, not {})", name,
                              header->layout_version, kLayoutVersion));
    if (header->kind != static_cast<std::uint32_t>(spec.kind))
      throw Error(fmt::format("'{}' is {}, not {}", name, kind_name(header->kind),
                              kind_name(static_cast<std::uint32_t>(spec.kind))));
    if (header->payload_size != spec.payload_size || header->elements_offset != elements_offset)
      throw Error(fmt::format("'{}' has another layout than this program's {}", name,
                              kind_name(header->kind)));
    if (header->element_size != spec.element_size || header->type_hash != spec.type_hash)
      throw Error(fmt::format("'{}' holds elements of another type ({} bytes each)", name,
                              header->element_size));
    if (spec.element_count != 0 && header->element_count != spec.element_count)
      throw Error(fmt::format("'{}' holds {} elements, not {}", name, header->element_count,
                              spec.element_count));
    if (object.region.size() < elements_offset + header->element_size * header->element_count)
      throw Error(fmt::format("shared memory '{}' is shorter than its header says", name));
    object.element_count = header->element_count;
  } else {
    std::size_t size = elements_offset + spec.element_size * spec.element_count;
    object.region =
        mode == OpenMode::create ? SharedRegion::create(name, size) : SharedRegion::anonymous(size);
    object.element_count = spec.element_count;
  }
  object.payload = object.region.data() + payload_offset;
  object.elements = object.region.data() + elements_offset;
  if (mode != OpenMode::attach) {
    auto* header = new (object.region.data()) ObjectHeader{};
    header->layout_version = kLayoutVersion;
    header->kind = static_cast<std::uint32_t>(spec.kind);
    header->payload_size = static_cast<std::uint32_t>(spec.payload_size);
    header->element_size = spec.element_size;
    header->element_count = spec.element_count;
    header->type_hash = spec.type_hash;
    header->elements_offset = elements_offset;
    initialize(object);
    header->ready.store(kReady, std::memory_order_release);
  }
  return object;
}

std::string fresh_name() {
  static std::atomic<std::uint32_t> counter{0};
  std::uint32_t random = 0;
  if (::getrandom(&random, sizeof random, 0) != sizeof random)
    random =
        static_cast<std::uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return fmt::format("ferry-{}-{:08x}{:04x}", ::getpid(), random, counter.fetch_add(1) & 0xffff);
}

std::uint64_t hash_type_name(const char* name) {
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a
  for (; *name != '\0'; ++name) {
    hash ^= static_cast<unsigned char>(*name);
    hash *= 1099511628211ull;
  }
  return hash;
}

}  // namespace ferry::detail
