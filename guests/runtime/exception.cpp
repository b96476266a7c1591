#include "guests/runtime/exception.hpp"

#include "guests/runtime/console.hpp"
#include "guests/runtime/hypercall.hpp"
#include "guests/runtime/x86.hpp"

namespace hvg {

namespace {

constinit ExceptionHook g_hooks[kExceptionVectors] = {};
// Exceptions being handled right now; > 1 means the handler itself faulted.
constinit volatile int g_depth = 0;

// rdmsr_safe/wrmsr_safe arm the fixup for exactly their one instruction.
constinit volatile bool g_msr_fixup_armed = false;
constinit volatile bool g_msr_faulted = false;

// RDMSR is 0F 32, WRMSR is 0F 30 (SDM Vol. 2B); both are 2 bytes long.
bool msr_fixup(ExceptionFrame& f) {
    if (!g_msr_fixup_armed) return false;
    auto* code = reinterpret_cast<const volatile uint8_t*>(f.rip);
    if (code[0] != 0x0F || (code[1] != 0x32 && code[1] != 0x30)) return false;
    f.rip += 2;
    g_msr_faulted = true;
    g_msr_fixup_armed = false;
    return true;
}

[[noreturn]] void exit_now(uint64_t code) {
    // No console, no C++ helpers: used when the handler itself faulted.
    uint64_t rax = static_cast<uint64_t>(hv::abi::Hypercall::exit), rdi = code;
    asm volatile("vmcall" : "+a"(rax), "+D"(rdi)::"rdx", "rsi", "cc", "memory");
    for (;;) asm volatile("cli; hlt" ::: "memory");
}

}  // namespace

void set_exception_hook(uint8_t vector, ExceptionHook hook) {
    if (vector < kExceptionVectors) g_hooks[vector] = hook;
}

const char* exception_name(uint64_t vector) {
    static constexpr const char* kNames[kExceptionVectors] = {
        "#DE",   "#DB",   "NMI",   "#BP",   "#OF",   "#BR",   "#UD", "#NM", "#DF", "CSO",  "#TS",
        "#NP",   "#SS",   "#GP",   "#PF",   "RSV15", "#MF",   "#AC", "#MC", "#XM", "#VE",  "#CP",
        "RSV22", "RSV23", "RSV24", "RSV25", "RSV26", "RSV27", "#HV", "#VC", "#SX", "RSV31"};
    return vector < kExceptionVectors ? kNames[vector] : "?";
}

MsrResult rdmsr_safe(uint32_t msr) {
    uint32_t lo = 0, hi = 0;
    g_msr_faulted = false;
    g_msr_fixup_armed = true;
    asm volatile("rdmsr" : "+a"(lo), "+d"(hi) : "c"(msr) : "memory");
    g_msr_fixup_armed = false;
    if (g_msr_faulted) return {false, 0};
    return {true, (static_cast<uint64_t>(hi) << 32) | lo};
}

bool wrmsr_safe(uint32_t msr, uint64_t v) {
    g_msr_faulted = false;
    g_msr_fixup_armed = true;
    asm volatile("wrmsr" ::"c"(msr), "a"(static_cast<uint32_t>(v)), "d"(static_cast<uint32_t>(v >> 32)) : "memory");
    g_msr_fixup_armed = false;
    return !g_msr_faulted;
}

}  // namespace hvg

// Called by the stubs in entry.asm with interrupts off on the current stack.
extern "C" void hvg_exception(hvg::ExceptionFrame* frame) {
    using namespace hvg;
    ExceptionFrame& f = *frame;
    int depth = g_depth + 1;
    g_depth = depth;
    if (depth > 2) exit_now(kExceptionExitBase + f.vector);

    if (depth == 1) {
        if (f.vector == kVectorGp && msr_fixup(f)) {
            g_depth = 0;
            return;
        }
        ExceptionHook hook = f.vector < kExceptionVectors ? g_hooks[f.vector] : nullptr;
        if (hook && hook(f)) {
            g_depth = 0;
            return;
        }
    }

    Event("exception")
        .u("vector", f.vector)
        .s("name", exception_name(f.vector))
        .x("error", f.error)
        .x("rip", f.rip)
        .x("cr2", read_cr2())
        .x("rsp", f.rsp)
        .x("rflags", f.rflags)
        .b("nested", depth > 1)
        .u("exit_code", kExceptionExitBase + f.vector)
        .emit();
    hc::exit(kExceptionExitBase + f.vector);
}
