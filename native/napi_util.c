// Node-API argument helpers: turn JS values into C pointers and numbers, or throw a TypeError/RangeError that names
// the function and the argument. The glue of every kernel file uses these and holds no math.
// A typed array's data pointer from napi_get_typedarray_info already includes its byte offset, so subarray views work.
#include "common.h"
#include <math.h>
#include <stdio.h>

static const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "a typed array";
  }
}

static const char* value_kind(napi_env env, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return "unknown";
  switch (t) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "a boolean";
    case napi_number: return "a number";
    case napi_string: return "a string";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    case napi_bigint: return "a bigint";
    default: {
      bool isArr = false;
      napi_is_array(env, v, &isArr);
      return isArr ? "an Array" : "an object";
    }
  }
}

static int throw_type(napi_env env, const char* fn, const char* arg, const char* want, const char* got) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s must be %s (got %s)", fn, arg, want, got);
  napi_throw_type_error(env, NULL, msg);
  return -1;
}

static int arg_typed(napi_env env, napi_value v, const char* fn, const char* arg, napi_typedarray_type want,
                     int allowNull, void** ptr, size_t* len) {
  napi_valuetype vt;
  if (napi_typeof(env, v, &vt) != napi_ok) return throw_type(env, fn, arg, typed_array_name(want), "unknown");
  if (allowNull && (vt == napi_null || vt == napi_undefined)) {
    *ptr = NULL;
    *len = 0;
    return 0;
  }
  bool is = false;
  napi_is_typedarray(env, v, &is);
  char wantName[48];
  const char* tn = typed_array_name(want);
  snprintf(wantName, sizeof wantName, "%s %s%s", tn[0] == 'I' ? "an" : "a", tn, allowNull ? " or null" : "");
  if (!is) return throw_type(env, fn, arg, wantName, value_kind(env, v));
  napi_typedarray_type t;
  size_t n;
  void* data;
  if (napi_get_typedarray_info(env, v, &t, &n, &data, NULL, NULL) != napi_ok)
    return throw_type(env, fn, arg, wantName, "an unreadable typed array");
  if (t != want) return throw_type(env, fn, arg, wantName, typed_array_name(t));
  *ptr = data;
  *len = n;
  return 0;
}

int cw_arg_f32(napi_env env, napi_value v, const char* fn, const char* arg, float** ptr, size_t* len) {
  return arg_typed(env, v, fn, arg, napi_float32_array, 0, (void**)ptr, len);
}
int cw_arg_f32_or_null(napi_env env, napi_value v, const char* fn, const char* arg, float** ptr, size_t* len) {
  return arg_typed(env, v, fn, arg, napi_float32_array, 1, (void**)ptr, len);
}
int cw_arg_i32(napi_env env, napi_value v, const char* fn, const char* arg, int32_t** ptr, size_t* len) {
  return arg_typed(env, v, fn, arg, napi_int32_array, 0, (void**)ptr, len);
}
int cw_arg_i32_or_null(napi_env env, napi_value v, const char* fn, const char* arg, int32_t** ptr, size_t* len) {
  return arg_typed(env, v, fn, arg, napi_int32_array, 1, (void**)ptr, len);
}

int cw_arg_u8(napi_env env, napi_value v, const char* fn, const char* arg, uint8_t** ptr, size_t* len) {
  return arg_typed(env, v, fn, arg, napi_uint8_array, 0, (void**)ptr, len);
}
int cw_arg_u16(napi_env env, napi_value v, const char* fn, const char* arg, uint16_t** ptr, size_t* len) {
  return arg_typed(env, v, fn, arg, napi_uint16_array, 0, (void**)ptr, len);
}

int cw_arg_double(napi_env env, napi_value v, const char* fn, const char* arg, double* out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_number) return throw_type(env, fn, arg, "a number", value_kind(env, v));
  napi_get_value_double(env, v, out);
  return 0;
}

int cw_arg_int(napi_env env, napi_value v, const char* fn, const char* arg, int64_t* out) {
  double d;
  if (cw_arg_double(env, v, fn, arg, &d)) return -1;
  if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740991.0) {
    char got[64];
    snprintf(got, sizeof got, "%g", d);
    return throw_type(env, fn, arg, "an integer", got);
  }
  *out = (int64_t)d;
  return 0;
}

int cw_arg_bool(napi_env env, napi_value v, const char* fn, const char* arg, int* out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_boolean) {
    bool b;
    napi_get_value_bool(env, v, &b);
    *out = b ? 1 : 0;
    return 0;
  }
  if (t == napi_number) {  // 0 / 1 are accepted too
    double d;
    napi_get_value_double(env, v, &d);
    if (d == 0 || d == 1) {
      *out = d != 0;
      return 0;
    }
  }
  return throw_type(env, fn, arg, "a boolean", value_kind(env, v));
}

int cw_check_len(napi_env env, const char* fn, const char* arg, size_t len, int64_t need) {
  char msg[256];
  if (need < 0) {  // a size product that overflowed on the way here: never let it pass as "needs nothing"
    snprintf(msg, sizeof msg, "%s: %s: the sizes give a negative element count (%lld)", fn, arg, (long long)need);
  } else {
    if ((uint64_t)len >= (uint64_t)need) return 0;
    snprintf(msg, sizeof msg, "%s: %s has %zu elements, needs at least %lld", fn, arg, len, (long long)need);
  }
  napi_throw_range_error(env, NULL, msg);
  return -1;
}

napi_value cw_make_double(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

void cw_export(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &f);
  napi_set_named_property(env, exports, name, f);
}
