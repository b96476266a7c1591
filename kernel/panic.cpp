#include "kernel/panic.hpp"

#include "kernel/cpu/percpu.hpp"
#include "kernel/cpu/x86.hpp"
#include "kernel/log.hpp"

// A pure virtual call means a bug; PhysReader is the only abstract class.
extern "C" [[noreturn]] void __cxa_pure_virtual() {
    for (;;) asm volatile("cli; hlt");
}

namespace hv {

namespace {
constinit bool g_test_exit = false;
// QEMU's isa-debug-exit device (iobase=0xf4): writing v makes QEMU exit with
// status (v << 1) | 1. Bochs: the string "Shutdown" written to port 0x8900
// ends the simulation. Both ports are inert on the other emulator.
constexpr uint16_t kQemuDebugExit = 0xF4;
constexpr uint16_t kBochsShutdown = 0x8900;
}  // namespace

void set_test_exit(bool enabled) { g_test_exit = enabled; }
bool test_exit_enabled() { return g_test_exit; }

void platform_exit(ExitStatus status) {
    Line l("exit");
    l.s("status", status == ExitStatus::success ? "success" : "failure");
    log::emit(l);
    if (g_test_exit) {
        x86::outb(kQemuDebugExit, static_cast<uint8_t>(status));
        for (const char* p = "Shutdown"; *p; ++p) x86::outb(kBochsShutdown, static_cast<uint8_t>(*p));
    }
    x86::halt_forever();
}

void panic(const char* file, int line, const char* msg) {
    x86::cli();
    log::enter_panic_mode();
    Line l("panic");
    l.s("msg", msg).s("file", file).i("line", line);
    log::emit(l);
    platform_exit(ExitStatus::failure);
}

}  // namespace hv
