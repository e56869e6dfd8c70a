// The zstd stream codec of compressed backups, libzstd loaded on first use.
#include "db/backup_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include <zstd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/error.h"
#include "sys/dynlib.h"
#include "sys/fs.h"

namespace hoist::db::backup {

namespace detail {

// --- zstd, loaded on first use

namespace {

struct ZstdApi {
  sys::DynLib lib{{"libzstd.so.1"}, "backup", "zstd compression", "libzstd1"};
  decltype(&ZSTD_createCCtx) createCCtx = lib.Get<decltype(&ZSTD_createCCtx)>("ZSTD_createCCtx");
  decltype(&ZSTD_freeCCtx) freeCCtx = lib.Get<decltype(&ZSTD_freeCCtx)>("ZSTD_freeCCtx");
  decltype(&ZSTD_CCtx_setParameter) setParameter = lib.Get<decltype(&ZSTD_CCtx_setParameter)>("ZSTD_CCtx_setParameter");
  decltype(&ZSTD_compressStream2) compressStream2 = lib.Get<decltype(&ZSTD_compressStream2)>("ZSTD_compressStream2");
  decltype(&ZSTD_createDCtx) createDCtx = lib.Get<decltype(&ZSTD_createDCtx)>("ZSTD_createDCtx");
  decltype(&ZSTD_freeDCtx) freeDCtx = lib.Get<decltype(&ZSTD_freeDCtx)>("ZSTD_freeDCtx");
  decltype(&ZSTD_decompressStream) decompressStream = lib.Get<decltype(&ZSTD_decompressStream)>("ZSTD_decompressStream");
  decltype(&ZSTD_isError) isError = lib.Get<decltype(&ZSTD_isError)>("ZSTD_isError");
  decltype(&ZSTD_getErrorName) getErrorName = lib.Get<decltype(&ZSTD_getErrorName)>("ZSTD_getErrorName");
};

const ZstdApi& Zstd() {
  static const ZstdApi api;
  return api;
}

constexpr size_t kZBuf = 4 << 20;

}  // namespace

uint64_t ZstdCompress(int in_fd, uint64_t size, int out_fd, int level, const std::function<void(const char*, size_t)>& on_out,
                      const std::function<void(uint64_t)>& on_progress, const std::string& path) {
  const ZstdApi& z = Zstd();
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(z.createCCtx(), z.freeCCtx);
  if (!cctx) Fail("failed", "zstd: cannot create a compression context");
  z.setParameter(cctx.get(), ZSTD_c_compressionLevel, level);
  z.setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
  // Two workers overlap compression with our reads and writes; a libzstd
  // built without threads rejects the parameter and compresses inline.
  z.setParameter(cctx.get(), ZSTD_c_nbWorkers, 2);
  std::unique_ptr<char[]> in(new char[kZBuf]), out(new char[kZBuf]);
  uint64_t off = 0, written = 0;
  for (;;) {
    CheckStop();
    size_t n = static_cast<size_t>(std::min<uint64_t>(kZBuf, size - off));
    size_t got = n ? PreadFull(in_fd, in.get(), n, off, path, kArea) : 0;
    if (got != n) Fail("failed", "short read while compressing " + path);
    off += n;
    bool last = off >= size;
    ZSTD_inBuffer ib{in.get(), n, 0};
    for (;;) {
      ZSTD_outBuffer ob{out.get(), kZBuf, 0};
      size_t rest = z.compressStream2(cctx.get(), &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
      if (z.isError(rest)) Fail("failed", std::string("zstd: ") + z.getErrorName(rest));
      if (ob.pos) {
        WriteFull(out_fd, out.get(), ob.pos, path, kArea);
        on_out(out.get(), ob.pos);
        written += ob.pos;
      }
      if (last ? rest == 0 : ib.pos == ib.size) break;
    }
    if (on_progress) on_progress(off);
    if (last) break;
  }
  return written;
}

uint64_t ZstdDecompress(int in_fd, int out_fd, const std::function<void(const char*, size_t)>& on_in,
                        const std::function<void(uint64_t)>& on_progress, const std::string& display) {
  const ZstdApi& z = Zstd();
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(z.createDCtx(), z.freeDCtx);
  if (!dctx) Fail("failed", "zstd: cannot create a decompression context");
  std::unique_ptr<char[]> in(new char[kZBuf]), out(new char[kZBuf]);
  uint64_t read_total = 0, written = 0;
  size_t last_ret = 1;  // 0 once a frame is completely decoded and flushed
  bool out_full = false;
  auto step = [&](ZSTD_inBuffer& ib) {
    ZSTD_outBuffer ob{out.get(), kZBuf, 0};
    last_ret = z.decompressStream(dctx.get(), &ob, &ib);
    if (z.isError(last_ret)) Fail("corrupt", display + ": zstd: " + z.getErrorName(last_ret));
    if (ob.pos) {
      WriteFull(out_fd, out.get(), ob.pos, "decompressed copy of " + display, kArea);
      written += ob.pos;
    }
    out_full = ob.pos == ob.size;
  };
  for (;;) {
    CheckStop();
    ssize_t n = ::read(in_fd, in.get(), kZBuf);
    if (n < 0) {
      if (errno == EINTR) continue;
      FailErrno("cannot read", display, errno);
    }
    if (n == 0) break;
    on_in(in.get(), static_cast<size_t>(n));
    read_total += static_cast<uint64_t>(n);
    ZSTD_inBuffer ib{in.get(), static_cast<size_t>(n), 0};
    do {
      step(ib);
    } while (ib.pos < ib.size || out_full);
    if (on_progress) on_progress(read_total);
  }
  if (last_ret != 0) Fail("corrupt", display + ": zstd: the compressed stream is truncated");
  return written;
}

bool LooksZstd(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  Fd guard(fd);
  unsigned char m[4] = {};
  return ::pread(fd, m, 4, 0) == 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd;
}

}  // namespace detail

}  // namespace hoist::db::backup
