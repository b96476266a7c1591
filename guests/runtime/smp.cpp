#include "guests/runtime/smp.hpp"

#include "guests/runtime/x86.hpp"

extern "C" void hvg_ap_entry();

namespace hvg {

namespace {

constexpr uint32_t kMaxVcpus = 16;
constinit ApFunction g_ap_fn[kMaxVcpus] = {};

}  // namespace

HypercallResult start_vcpu(uint32_t index, ApFunction fn, void* stack, size_t stack_bytes) {
    if (index == 0 || index >= kMaxVcpus || !fn || !stack || stack_bytes < 4096)
        return {hv::abi::Status::invalid_argument, 0};
    // Published before the hypercall: the new vCPU reads it on its own CPU.
    __atomic_store_n(&g_ap_fn[index], fn, __ATOMIC_RELEASE);
    uint64_t top = (reinterpret_cast<uint64_t>(stack) + stack_bytes) & ~15ull;
    return hypercall(hv::abi::Hypercall::vcpu_start, index, reinterpret_cast<uint64_t>(&hvg_ap_entry), top);
}

uint32_t vcpu_index() {
    return cpuid(1, 0).ebx >> 24;
}

}  // namespace hvg

extern "C" void hvg_ap_start(uint64_t index) {
    hvg::ApFunction fn = index < hvg::kMaxVcpus ? __atomic_load_n(&hvg::g_ap_fn[index], __ATOMIC_ACQUIRE) : nullptr;
    if (fn) fn(static_cast<uint32_t>(index));
}
