// A C library's handle owned: freed by its library's function when its owner goes, whatever
// way it goes. Owned<bpf_object, bpf_object__close>, Owned<nl_sock, nl_socket_free>.
#pragma once

#include <memory>

namespace lbd {

template <auto Free>
struct FreeWith {
  template <class T>
  void operator()(T* p) const {
    if (p) Free(p);
  }
};

template <class T, auto Free>
using Owned = std::unique_ptr<T, FreeWith<Free>>;

}  // namespace lbd
