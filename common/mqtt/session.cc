#include "common/mqtt/session.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace derms::mqtt {

Session::Session(Client* client, SessionOptions options)
    : client_(client),
      options_(std::move(options)),
      backoff_ms_(options_.reconnect_min_ms),
      rng_(options_.jitter_seed) {
  client_->SetConnectionLostHandler([this](const std::string&) { lost_ = true; });
}

void Session::Backoff(const std::string& why) {
  state_ = State::kDisconnected;
  last_error_ = why;
  std::uniform_int_distribution<int64_t> jitter(0, backoff_ms_ / 2);
  int64_t wait_ms = backoff_ms_ + jitter(rng_);
  next_attempt_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  spdlog::warn("{}: {}; retrying in {} ms", client_->client_id(), why, wait_ms);
  backoff_ms_ = std::min(backoff_ms_ * 2, options_.reconnect_max_ms);
}

void Session::MarkLost(const std::string& why) {
  client_->Disconnect();
  Backoff(why);
}

Session::Event Session::Step(const std::function<Status(ConnectOptions*)>& prepare) {
  if (lost_.exchange(false) && state_ != State::kDisconnected) {
    Backoff("connection to the broker lost");
    return Event::kLost;
  }
  Status error;
  switch (state_) {
    case State::kDisconnected: {
      if (std::chrono::steady_clock::now() < next_attempt_) return Event::kNone;
      ConnectOptions connect;
      Status s = prepare(&connect);
      if (!s.ok()) {
        Backoff(s.ToString());
        return Event::kNone;
      }
      pending_ = client_->StartConnect(connect);
      state_ = State::kConnecting;
      return Event::kNone;
    }
    case State::kConnecting:
      switch (pending_.Poll(&error)) {
        case Pending::State::kRunning:
          return Event::kNone;
        case Pending::State::kFailed:
          Backoff(error.ToString());
          return Event::kNone;
        case Pending::State::kDone:
          break;
      }
      if (pending_.SessionPresent() || options_.filters.empty()) {
        break;  // the broker kept our subscriptions
      }
      pending_ = client_->StartSubscribe(options_.filters, 1);
      state_ = State::kSubscribing;
      return Event::kNone;
    case State::kSubscribing:
      switch (pending_.Poll(&error)) {
        case Pending::State::kRunning:
          return Event::kNone;
        case Pending::State::kFailed:
          MarkLost(error.ToString());
          return Event::kNone;
        case Pending::State::kDone:
          break;
      }
      break;
    case State::kOnline:
      return Event::kNone;
  }
  state_ = State::kOnline;
  backoff_ms_ = options_.reconnect_min_ms;
  last_error_.clear();
  return Event::kOnline;
}

}  // namespace derms::mqtt
