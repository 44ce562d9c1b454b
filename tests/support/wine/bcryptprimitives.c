/* A stand-in for Windows' bcryptprimitives.dll, for the Wine test harness only (tests/wine.rs).
 *
 * Rust's standard library takes its random bytes from ProcessPrng in bcryptprimitives.dll,
 * which Wine 8 lacks, so the exe would not start under it. This DLL, put beside the exe, gives
 * ProcessPrng by RtlGenRandom (advapi32's SystemFunction036), which Wine has. Real Windows
 * (10 and later) has ProcessPrng and never sees this file: it is not shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG: fill in pieces of at most 1 GiB. */
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
