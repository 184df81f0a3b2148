/**
 * pagedkv: a paged KV cache with token-exact prefix reuse for LLM inference. The API is the
 * {@code io.pagedkv} package; the generated bindings and the native-library loader stay inside.
 */
module io.pagedkv {
    exports io.pagedkv;
}
