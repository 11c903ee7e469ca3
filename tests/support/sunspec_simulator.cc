#include "tests/support/sunspec_simulator.h"

#include <arpa/inet.h>
#include <modbus.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace derms::testing {
namespace {

constexpr uint32_t kHwTestFailureBit = 1u << 15;
constexpr uint16_t kStateMppt = 4;
constexpr uint16_t kStateFault = 7;

}  // namespace

SunSpecSimulator::SunSpecSimulator(SunSpecSimOptions options)
    : options_(options),
      layout_(options.base),
      available_w_(options.available_w),
      soc_pct_(options.soc_pct) {
  uint16_t inverter = options_.storage ? 101 : 103;
  layout_.Add(1).Add(inverter).Add(120).Add(121).Add(options_.storage ? 124 : 123).End();
  // Scale factors a real device might use, none of them 0 where it matters.
  layout_.Raw(inverter, "W_SF", 1)
      .Raw(inverter, "V_SF", -1)
      .Raw(inverter, "Hz_SF", -2)
      .Raw(inverter, "VAr_SF", 0)
      .Raw(inverter, "PhVphA", 2401)
      .Raw(inverter, "Hz", 6000)
      .Raw(inverter, "VAr", 0)
      .Raw(inverter, "St", kStateMppt)
      .Raw(inverter, "Evt1", 0)
      .Scaled(120, "WRtg", options_.rating_w, "WRtg_SF", 1)
      .Scaled(121, "WMax", options_.rating_w, "WMax_SF", 1);
  if (inverter == 103) layout_.Raw(103, "PhVphB", 2399).Raw(103, "PhVphC", 2400);
  if (options_.storage) {
    layout_.Scaled(124, "WChaMax", options_.rating_w, "WChaMax_SF", 1)
        .Scaled(124, "MinRsvPct", 10, "MinRsvPct_SF", 0)
        .Raw(124, "ChaState_SF", -1)
        .Raw(124, "StorCtl_Mod", 0)
        .Raw(124, "OutWRte", 0)
        .Raw(124, "InWRte", 0)
        .Raw(124, "InOutWRte_SF", -1);
  } else {
    layout_.Raw(123, "WMaxLimPct", 1000).Raw(123, "WMaxLim_Ena", 0).Raw(123, "WMaxLimPct_SF", -1);
  }

  const auto& regs = layout_.registers();
  mapping_ = modbus_mapping_new_start_address(0, 0, 0, 0, options_.base,
                                              static_cast<unsigned>(regs.size()), 0, 0);
  if (!mapping_) throw std::runtime_error("sunspec simulator: cannot allocate the register map");
  std::copy(regs.begin(), regs.end(), mapping_->tab_registers);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    UpdateLocked(0);
  }

  ctx_ = modbus_new_tcp("127.0.0.1", options_.port);
  if (!ctx_) throw std::runtime_error("sunspec simulator: cannot create a Modbus context");
  modbus_set_indication_timeout(ctx_, 1, 0);
  listen_fd_ = modbus_tcp_listen(ctx_, 4);
  if (listen_fd_ < 0) {
    throw std::runtime_error(std::string("sunspec simulator: listen: ") + modbus_strerror(errno));
  }
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

SunSpecSimulator::~SunSpecSimulator() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (client_fd_ >= 0) ::close(client_fd_);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (ctx_) modbus_free(ctx_);
  if (mapping_) modbus_mapping_free(mapping_);
}

uint16_t& SunSpecSimulator::RegLocked(uint16_t model, const std::string& point) {
  return mapping_->tab_registers[layout_.AddressOf(model, point) - options_.base];
}

void SunSpecSimulator::SetLocked(uint16_t model, const std::string& point, int64_t raw) {
  auto [offset, size] = SunSpecImage::Point(model, point);
  (void)offset;
  uint16_t* r = &RegLocked(model, point);
  if (size == 2) {
    auto bits = static_cast<uint32_t>(raw);
    r[0] = static_cast<uint16_t>(bits >> 16);
    r[1] = static_cast<uint16_t>(bits & 0xFFFF);
  } else {
    r[0] = static_cast<uint16_t>(raw & 0xFFFF);
  }
}

void SunSpecSimulator::UpdateLocked(double dt_s) {
  uint16_t inverter = options_.storage ? 101 : 103;
  double wmax = RegLocked(121, "WMax") * 10.0;  // WMax_SF 1
  if (options_.storage) {
    auto rate = [this](const char* p) { return static_cast<int16_t>(RegLocked(124, p)) / 10.0; };
    uint16_t mode = RegLocked(124, "StorCtl_Mod");
    double lo = -wmax;  // charging
    double hi = wmax;   // discharging
    if (mode & 1) lo = std::max(lo, -rate("InWRte") / 100.0 * wmax);
    if (mode & 2) hi = std::min(hi, rate("OutWRte") / 100.0 * wmax);
    if (soc_pct_ >= 100) lo = std::max(lo, 0.0);
    if (soc_pct_ <= 0) hi = std::min(hi, 0.0);
    output_w_ = lo > hi ? 0.0 : std::clamp(0.0, lo, hi);
    soc_pct_ =
        std::clamp(soc_pct_ - 100.0 * output_w_ * dt_s / 3600.0 / options_.capacity_wh, 0.0, 100.0);
    SetLocked(124, "ChaState", std::lround(soc_pct_ * 10));
  } else {
    double limit = wmax;
    if (RegLocked(123, "WMaxLim_Ena") == 1) limit = RegLocked(123, "WMaxLimPct") / 1000.0 * wmax;
    output_w_ = std::max(0.0, std::min(available_w_, limit));
  }
  bool fault = (RegLocked(inverter, "St") == kStateFault);
  if (fault) output_w_ = 0;
  SetLocked(inverter, "W", std::lround(output_w_ / 10.0));  // W_SF 1
}

void SunSpecSimulator::DropConnections(bool on) {
  drop_ = on;
  uint64_t seen = loops_;
  while (loops_ < seen + 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void SunSpecSimulator::SetHardwareFault(bool on) {
  std::lock_guard<std::mutex> lock(mutex_);
  uint16_t inverter = options_.storage ? 101 : 103;
  SetLocked(inverter, "Evt1", on ? kHwTestFailureBit : 0);
  SetLocked(inverter, "St", on ? kStateFault : kStateMppt);
  UpdateLocked(0);
}

void SunSpecSimulator::SetAvailableW(double w) {
  std::lock_guard<std::mutex> lock(mutex_);
  available_w_ = w;
  UpdateLocked(0);
}

void SunSpecSimulator::SetRegister(uint16_t model, const std::string& point, int64_t raw) {
  std::lock_guard<std::mutex> lock(mutex_);
  SetLocked(model, point, raw);
  UpdateLocked(0);
}

double SunSpecSimulator::OutputW() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return output_w_;
}

double SunSpecSimulator::SocPct() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return soc_pct_;
}

uint16_t SunSpecSimulator::RawAt(uint16_t model, const std::string& point) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return mapping_->tab_registers[layout_.AddressOf(model, point) - options_.base];
}

void SunSpecSimulator::Handle(const uint8_t* query, int length) {
  ++requests_;
  if (unresponsive_) return;  // the client times out
  int header = modbus_get_header_length(ctx_);
  int unit = query[header - 1];
  int function = query[header];
  if (unit != options_.unit_id) {
    modbus_reply_exception(ctx_, query, MODBUS_EXCEPTION_GATEWAY_TARGET);
    return;
  }
  bool write = function == 0x06 || function == 0x10;
  if (write && refuse_code_ != 0) {
    modbus_reply_exception(ctx_, query, refuse_code_);
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<uint16_t> before;
  if (write && ignore_writes_) {
    before.assign(mapping_->tab_registers, mapping_->tab_registers + mapping_->nb_registers);
  }
  modbus_reply(ctx_, query, length, mapping_);
  if (write) {
    ++writes_;
    if (!before.empty()) std::copy(before.begin(), before.end(), mapping_->tab_registers);
    UpdateLocked(0);
  }
}

void SunSpecSimulator::Serve() {
  std::vector<uint8_t> query(MODBUS_TCP_MAX_ADU_LENGTH);
  auto last = std::chrono::steady_clock::now();
  while (!stop_) {
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(listen_fd_, &fds);
    int max_fd = listen_fd_;
    const int polled = client_fd_;
    if (client_fd_ >= 0) {
      FD_SET(client_fd_, &fds);
      max_fd = std::max(max_fd, client_fd_);
    }
    timeval tv{0, 20000};
    int n = ::select(max_fd + 1, &fds, nullptr, nullptr, &tv);
    auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      UpdateLocked(std::chrono::duration<double>(now - last).count());
    }
    last = now;
    ++loops_;
    if (drop_ && client_fd_ >= 0) {
      ::close(client_fd_);
      client_fd_ = -1;
    }
    if (n <= 0) continue;
    if (FD_ISSET(listen_fd_, &fds)) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd >= 0) {
        if (drop_) {
          ::close(fd);
        } else {
          // One client at a time, as many small inverters: the newest wins.
          if (client_fd_ >= 0) ::close(client_fd_);
          client_fd_ = fd;
          ++connections_;
        }
      }
    }
    if (client_fd_ >= 0 && client_fd_ == polled && FD_ISSET(client_fd_, &fds)) {
      modbus_set_socket(ctx_, client_fd_);
      int rc = modbus_receive(ctx_, query.data());
      if (rc > 0) {
        Handle(query.data(), rc);
      } else if (rc < 0) {
        ::close(client_fd_);
        client_fd_ = -1;
      }
    }
  }
}

}  // namespace derms::testing
