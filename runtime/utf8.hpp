// runtime/utf8.hpp — checking that ids and names are UTF-8 before they go into JSON (which
// holds only UTF-8, and whose library would otherwise throw its own exception).
#pragma once

#include <cstddef>
#include <fmt/format.h>
#include <string_view>

#include "durable/errors.hpp"

namespace durable::detail {

// The offset of the first byte of `text` that is not part of well-formed UTF-8 (RFC 3629: no
// overlong forms, no surrogates, nothing past U+10FFFF), or npos.
inline std::size_t first_invalid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        auto b = static_cast<unsigned char>(text[i]);
        if (b < 0x80) {
            ++i;
            continue;
        }
        std::size_t n = 0;
        unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
        if (b >= 0xC2 && b <= 0xDF) {
            n = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            n = 2;
            if (b == 0xE0) lo = 0xA0;
            if (b == 0xED) hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            n = 3;
            if (b == 0xF0) lo = 0x90;
            if (b == 0xF4) hi = 0x8F;
        } else {
            return i;
        }
        if (i + n >= text.size()) return i;  // cut short
        for (std::size_t k = 1; k <= n; ++k) {
            auto c = static_cast<unsigned char>(text[i + k]);
            if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return i;
        }
        i += n + 1;
    }
    return std::string_view::npos;
}

// Throws InvalidInput saying that `what` is not valid UTF-8, and where.
inline void require_utf8(std::string_view text, std::string_view what) {
    auto bad = first_invalid_utf8(text);
    if (bad == std::string_view::npos) return;
    throw InvalidInput(fmt::format("{} is not valid UTF-8 (byte {} is 0x{:02X})", what, bad,
                                   static_cast<unsigned char>(text[bad])));
}

}  // namespace durable::detail
