// The conversions of convert.h over a vector traits type `Vec`; included once by each
// write_kv_<isa>.cpp inside namespace pagedkv::kernels::cpu::<isa>.

void f32_to_f16(const float* src, uint16_t* dst, int64_t count) {
    int64_t i = 0;
    for (; i + Vec::W <= count; i += Vec::W) Vec::store_f16(dst + i, Vec::load(src + i));
    if (i < count) Vec::store_f16_n(dst + i, Vec::load_n(src + i, int(count - i)), int(count - i));
}

void f32_to_bf16(const float* src, uint16_t* dst, int64_t count) {
    int64_t i = 0;
    for (; i + Vec::W <= count; i += Vec::W) Vec::store_bf16(dst + i, Vec::load(src + i));
    if (i < count) Vec::store_bf16_n(dst + i, Vec::load_n(src + i, int(count - i)), int(count - i));
}
