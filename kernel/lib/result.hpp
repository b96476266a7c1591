#pragma once
// Result<T>: a value or an Error, never both. No exceptions in the hypervisor,
// so every fallible function returns one of these and callers must look at it.

#include <stdint.h>

#include <new>
#include <type_traits>
#include <utility>

namespace hv {

// Broad classes of failure. The detail string says exactly what was wrong; the
// code lets callers branch without comparing strings.
enum class Errc : uint8_t {
    ok = 0,
    invalid_argument,  // caller passed something out of range
    bad_checksum,      // a firmware/loader structure failed its checksum
    bad_signature,     // magic number or signature mismatch
    truncated,         // a structure claims to extend past its container
    malformed,         // fields inconsistent with each other
    unsupported,       // valid input we do not handle
    not_found,         // looked for something that is not there
    no_memory,         // an allocator is exhausted
    unmapped,          // physical range not accessible through the reader
    overlap,           // two ranges that must be disjoint overlap
    timeout,           // hardware did not answer in time
    hardware,          // hardware refused (e.g. VMX instruction failed)
};

const char* errc_name(Errc c);

struct Error {
    Errc code = Errc::ok;
    // Static string (a literal): errors are created on paths that cannot allocate.
    const char* detail = "";
    // One number of context (an offset, an address, a sum) printed with the detail.
    uint64_t value = 0;
};

constexpr Error make_error(Errc code, const char* detail, uint64_t value = 0) {
    return Error{code, detail, value};
}

template <typename T>
class [[nodiscard]] Result {
  public:
    Result(const T& v) : ok_(true) { new (&storage_.value) T(v); }
    Result(T&& v) : ok_(true) { new (&storage_.value) T(std::move(v)); }
    Result(Error e) : ok_(false) { storage_.error = e; }
    Result(const Result& o) : ok_(o.ok_) {
        if (ok_) new (&storage_.value) T(o.storage_.value);
        else storage_.error = o.storage_.error;
    }
    Result& operator=(const Result& o) {
        if (this == &o) return *this;
        if (ok_) storage_.value.~T();
        ok_ = o.ok_;
        if (ok_) new (&storage_.value) T(o.storage_.value);
        else storage_.error = o.storage_.error;
        return *this;
    }
    ~Result() {
        if (ok_) storage_.value.~T();
    }

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    T& value() { return storage_.value; }
    const T& value() const { return storage_.value; }
    T* operator->() { return &storage_.value; }
    const T* operator->() const { return &storage_.value; }
    T& operator*() { return storage_.value; }
    const T& operator*() const { return storage_.value; }
    const Error& error() const { return storage_.error; }

  private:
    union Storage {
        Storage() {}
        ~Storage() {}
        T value;
        Error error;
    } storage_;
    bool ok_;
};

template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Error e) : ok_(false), error_(e) {}
    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const Error& error() const { return error_; }

  private:
    bool ok_ = true;
    Error error_{};
};

inline Result<void> ok_result() { return {}; }

}  // namespace hv

// TRY(expr): evaluate a Result; on error return the error from the enclosing
// function, otherwise yield the value (GNU statement expression, as in SerenityOS).
#define TRY(expr)                                                   \
    ({                                                              \
        auto _try_result = (expr);                                  \
        if (!_try_result.ok()) return ::hv::Error(_try_result.error()); \
        ::hv::detail::take(_try_result);                            \
    })

namespace hv::detail {
template <typename T>
T take(Result<T>& r) {
    return std::move(r.value());
}
inline void take(Result<void>&) {}
}  // namespace hv::detail
