#include "daemon/notify.hpp"

#include <string>

#ifdef FERRY_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace ferry::daemon {
namespace {

void send(const std::string& state) {
#ifdef FERRY_HAVE_LIBSYSTEMD
  // NOTIFY_SOCKET stays set, so the jobs a worker starts inherit it; they
  // cannot speak for the unit all the same: systemd takes notifications
  // from its main process only (NotifyAccess=main, Type=notify's default).
  ::sd_notify(0, state.c_str());
#else
  (void)state;
#endif
}

// A status is one line: systemd shows it as it is.
std::string one_line(std::string_view status) {
  std::string line(status);
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  return line;
}

}  // namespace

bool can_notify() {
#ifdef FERRY_HAVE_LIBSYSTEMD
  return true;
#else
  return false;
#endif
}

void notify_ready(std::string_view status) { send("READY=1\nSTATUS=" + one_line(status)); }

void notify_status(std::string_view status) { send("STATUS=" + one_line(status)); }

void notify_stopping(std::string_view status) { send("STOPPING=1\nSTATUS=" + one_line(status)); }

}  // namespace ferry::daemon
