#include "run/output_order.hpp"

#include <unistd.h>

#include <cerrno>

namespace ferry::run {

using exec::Stream;

void OutputStreams::write(Stream stream, std::string_view data) {
  if (data.empty()) return;
  bool to_stdout = stream == Stream::out;
  if (to_stdout && stdout_closed_) return;
  if (before_write) before_write();
  int fd = to_stdout ? out_fd_ : err_fd_;
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // SIGPIPE is ignored (see exec::ProcessSet), so a gone reader is EPIPE.
      if (to_stdout && errno == EPIPE) stdout_closed_ = true;
      return;  // nothing sensible to do with a broken stderr
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

OutputOrder::OutputOrder(Mode mode, bool keep_order, OutputStreams& streams, SpoolBudget& budget)
    : mode_(mode), keep_order_(keep_order), streams_(streams), budget_(budget) {}

OutputOrder::Entry& OutputOrder::entry(std::uint64_t seq) {
  auto it = entries_.find(seq);
  if (it == entries_.end()) it = entries_.emplace(seq, Entry{Spool(budget_), Spool(budget_)}).first;
  return it->second;
}

void OutputOrder::started(std::uint64_t seq, bool final, std::string tag) {
  entries_.erase(seq);
  Entry& started = entry(seq);
  started.final = final;
  started.tag = std::move(tag);
  if (!final) return;
  if (keep_order_ ? seq == next_to_print_ : mode_ == Mode::line) go_live(started);
}

void OutputOrder::go_live(Entry& live) {
  auto to = [this](Stream stream) {
    return [this, stream](std::string_view data) { streams_.write(stream, data); };
  };
  live.out.drain(to(Stream::out));
  if (mode_ == Mode::line) live.err.drain(to(Stream::err));
  live.live = true;
}

// Line mode beside other live jobs: only whole lines go out; the rest of a
// line waits in `partial`.
void OutputOrder::write_lines(Spool& partial, Stream stream, std::string_view data) {
  std::size_t last_newline = data.rfind('\n');
  if (last_newline == std::string_view::npos) {
    partial.append(data);
    return;
  }
  partial.drain([&](std::string_view piece) { streams_.write(stream, piece); });
  streams_.write(stream, data.substr(0, last_newline + 1));
  partial.append(data.substr(last_newline + 1));
}

std::string OutputOrder::tagged(Entry& target, Stream stream, std::string_view data) {
  std::string out;
  bool& at_start = target.at_line_start[stream == Stream::out ? 0 : 1];
  while (!data.empty()) {
    if (at_start) out += target.tag;
    std::size_t newline = data.find('\n');
    std::size_t length = newline == std::string_view::npos ? data.size() : newline + 1;
    out.append(data.substr(0, length));
    at_start = newline != std::string_view::npos;
    data.remove_prefix(length);
  }
  return out;
}

void OutputOrder::output(std::uint64_t seq, Stream stream, std::string_view data) {
  Entry& target = entry(seq);
  std::string with_tags;
  if (!target.tag.empty()) {
    with_tags = tagged(target, stream, data);
    data = with_tags;
  }
  Spool& spool = stream == Stream::out ? target.out : target.err;
  if (!target.live || (mode_ == Mode::group && stream == Stream::err)) {
    spool.append(data);
  } else if (keep_order_) {
    streams_.write(stream, data);  // the one live job: nothing to tear
  } else {
    write_lines(spool, stream, data);
  }
}

void OutputOrder::print(Entry& done) {
  done.out.drain([this](std::string_view data) { streams_.write(Stream::out, data); });
  done.err.drain([this](std::string_view data) { streams_.write(Stream::err, data); });
}

void OutputOrder::ended(std::uint64_t seq, bool final, const std::string& note) {
  if (!final) {
    entries_.erase(seq);
    return;
  }
  Entry& done = entry(seq);
  done.running = false;
  done.err.append(note);
  if (!keep_order_) {
    print(done);
    entries_.erase(seq);
  } else if (seq == next_to_print_) {
    advance();
  }
}

void OutputOrder::skipped(std::uint64_t seq) {
  if (!keep_order_) return;
  entry(seq).running = false;
  if (seq == next_to_print_) advance();
}

// Prints the finished jobs at the head of the order, then lets the next
// running one write as it goes.
void OutputOrder::advance() {
  for (auto it = entries_.find(next_to_print_); it != entries_.end() && !it->second.running;
       it = entries_.find(next_to_print_)) {
    print(it->second);
    entries_.erase(it);
    ++next_to_print_;
  }
  auto head = entries_.find(next_to_print_);
  if (head != entries_.end() && head->second.final && !head->second.live) go_live(head->second);
}

void OutputOrder::flush() {
  for (auto& [seq, waiting] : entries_) print(waiting);
  entries_.clear();
}

}  // namespace ferry::run
