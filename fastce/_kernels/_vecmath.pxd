# Rows with fewer classes than this take the multi-row kernels, in runs of at
# most SHORT_RUN_ROWS rows (a stack buffer of SHORT_RUN_ROWS * SHORT_ROW_CLASSES).
cdef extern from "_vecmath.h":
    enum:
        SHORT_RUN_ROWS "FASTCE_SHORT_RUN_ROWS"
        SHORT_ROW_CLASSES "FASTCE_SHORT_ROW_CLASSES"

# Cython view of _vecmath.h: the vectorisable exp/log1p and the row kernels,
# with fused-type wrappers so that the .pyx loops are written once for
# float32 and float64 rows.
from cython cimport floating

cdef extern from "_vecmath.h" nogil:
    double fastce_exp(double x) noexcept
    float fastce_expf(float x) noexcept
    double fastce_log1p_unit(double u) noexcept
    float fastce_log1pf_unit(float u) noexcept
    double fastce_log_normal(double u) noexcept
    double fastce_row_max_f32(const float* z, Py_ssize_t n_classes) noexcept
    double fastce_row_max_f64(const double* z, Py_ssize_t n_classes) noexcept
    double fastce_row_exp_sum_f32(const float* z, float* exp_out, Py_ssize_t n_classes,
                                  double row_max, Py_ssize_t* n_at_max) noexcept
    double fastce_row_exp_sum_f64(const double* z, double* exp_out, Py_ssize_t n_classes,
                                  double row_max, Py_ssize_t* n_at_max) noexcept
    double fastce_row_exp_rest_f32(const float* z, float* exp_out, Py_ssize_t n_classes,
                                   double row_max) noexcept
    double fastce_row_exp_rest_f64(const double* z, double* exp_out, Py_ssize_t n_classes,
                                   double row_max) noexcept
    void fastce_row_scale_f32(float* out, const float* inp, Py_ssize_t n_classes,
                              double scale, const float* shift, double shift_scale) noexcept
    void fastce_row_scale_f64(double* out, const double* inp, Py_ssize_t n_classes,
                              double scale, const double* shift, double shift_scale) noexcept
    void fastce_row_hessian_f32(float* hess, const float* exp_row, Py_ssize_t n_classes,
                                double inv_sum, double rest, double scale) noexcept
    void fastce_row_hessian_f64(double* hess, const double* exp_row, Py_ssize_t n_classes,
                                double inv_sum, double rest, double scale) noexcept
    void fastce_cols_max_f32(const float* z, Py_ssize_t class_stride, Py_ssize_t n_classes,
                            Py_ssize_t width, double* col_max) noexcept
    void fastce_cols_exp_rest_f32(const float* z, float* exp_out, Py_ssize_t class_stride,
                                 Py_ssize_t n_classes, Py_ssize_t width,
                                 const double* col_max, double* col_rest) noexcept
    void fastce_cols_scale_f32(float* out, const float* inp, Py_ssize_t class_stride,
                              Py_ssize_t n_classes, Py_ssize_t width, const double* scale,
                              const float* shift, const double* shift_scale) noexcept
    void fastce_cols_log_softmax_f32(const float* z, float* out, Py_ssize_t class_stride,
                                    Py_ssize_t n_classes, Py_ssize_t width,
                                    const double* col_max, const double* log_sum) noexcept
    void fastce_cols_hessian_f32(float* hess, const float* exp_in, Py_ssize_t class_stride,
                                Py_ssize_t n_classes, Py_ssize_t width, const double* inv_sum,
                                const double* rest, const double* scale) noexcept
    void fastce_cols_max_f64(const double* z, Py_ssize_t class_stride, Py_ssize_t n_classes,
                            Py_ssize_t width, double* col_max) noexcept
    void fastce_cols_exp_rest_f64(const double* z, double* exp_out, Py_ssize_t class_stride,
                                 Py_ssize_t n_classes, Py_ssize_t width,
                                 const double* col_max, double* col_rest) noexcept
    void fastce_cols_scale_f64(double* out, const double* inp, Py_ssize_t class_stride,
                              Py_ssize_t n_classes, Py_ssize_t width, const double* scale,
                              const double* shift, const double* shift_scale) noexcept
    void fastce_cols_log_softmax_f64(const double* z, double* out, Py_ssize_t class_stride,
                                    Py_ssize_t n_classes, Py_ssize_t width,
                                    const double* col_max, const double* log_sum) noexcept
    void fastce_cols_hessian_f64(double* hess, const double* exp_in, Py_ssize_t class_stride,
                                Py_ssize_t n_classes, Py_ssize_t width, const double* inv_sum,
                                const double* rest, const double* scale) noexcept
    double fastce_dot_f32(const float* x, const float* w, Py_ssize_t n) noexcept
    double fastce_dot_mixed_f32(const float* x, const double* w, Py_ssize_t n) noexcept
    void fastce_axpy_f32(double* acc, double a, const float* x, Py_ssize_t n) noexcept
    double fastce_dot_f64(const double* x, const double* w, Py_ssize_t n) noexcept
    double fastce_dot_mixed_f64(const double* x, const double* w, Py_ssize_t n) noexcept
    void fastce_axpy_f64(double* acc, double a, const double* x, Py_ssize_t n) noexcept
    void fastce_rows_exp_rest_f32(const float* z, float* exp_out, Py_ssize_t n_rows,
                                  Py_ssize_t n_classes, double* row_max,
                                  double* row_rest, double* row_log_sum) noexcept
    void fastce_rows_exp_rest_f64(const double* z, double* exp_out, Py_ssize_t n_rows,
                                  Py_ssize_t n_classes, double* row_max,
                                  double* row_rest, double* row_log_sum) noexcept
    void fastce_rows_rest_f32(const float* z, Py_ssize_t n_rows, Py_ssize_t n_classes,
                              double* row_max, double* row_rest, double* row_log_sum) noexcept
    void fastce_rows_rest_f64(const double* z, Py_ssize_t n_rows, Py_ssize_t n_classes,
                              double* row_max, double* row_rest, double* row_log_sum) noexcept
    void fastce_row_log_softmax_f32(const float* z, float* out, Py_ssize_t n_classes,
                                    double row_max, double log_sum) noexcept
    void fastce_row_log_softmax_f64(const double* z, double* out, Py_ssize_t n_classes,
                                    double row_max, double log_sum) noexcept


cdef inline double row_max(const floating* z__c, Py_ssize_t n_classes) noexcept nogil:
    if floating is float:
        return fastce_row_max_f32(z__c, n_classes)
    else:
        return fastce_row_max_f64(z__c, n_classes)


cdef inline double row_exp_rest(const floating* z__c, floating* exp__c,
                                Py_ssize_t n_classes, double best) noexcept nogil:
    if floating is float:
        return fastce_row_exp_rest_f32(z__c, exp__c, n_classes, best)
    else:
        return fastce_row_exp_rest_f64(z__c, exp__c, n_classes, best)


cdef inline void row_scale(floating* out__c, const floating* in__c, Py_ssize_t n_classes,
                           double scale, const floating* shift__c,
                           double shift_scale) noexcept nogil:
    if floating is float:
        fastce_row_scale_f32(out__c, in__c, n_classes, scale, shift__c, shift_scale)
    else:
        fastce_row_scale_f64(out__c, in__c, n_classes, scale, shift__c, shift_scale)


cdef inline void rows_exp_rest(const floating* z__rc, floating* exp__rc, Py_ssize_t n_rows,
                               Py_ssize_t n_classes, double* row_max__r, double* row_rest__r,
                               double* row_log_sum__r) noexcept nogil:
    if floating is float:
        fastce_rows_exp_rest_f32(z__rc, exp__rc, n_rows, n_classes, row_max__r, row_rest__r,
                                 row_log_sum__r)
    else:
        fastce_rows_exp_rest_f64(z__rc, exp__rc, n_rows, n_classes, row_max__r, row_rest__r,
                                 row_log_sum__r)


cdef inline void rows_rest(const floating* z__rc, Py_ssize_t n_rows, Py_ssize_t n_classes,
                           double* row_max__r, double* row_rest__r,
                           double* row_log_sum__r) noexcept nogil:
    if floating is float:
        fastce_rows_rest_f32(z__rc, n_rows, n_classes, row_max__r, row_rest__r, row_log_sum__r)
    else:
        fastce_rows_rest_f64(z__rc, n_rows, n_classes, row_max__r, row_rest__r, row_log_sum__r)


cdef inline void row_log_softmax(const floating* z__c, floating* out__c, Py_ssize_t n_classes,
                                 double best, double log_sum) noexcept nogil:
    if floating is float:
        fastce_row_log_softmax_f32(z__c, out__c, n_classes, best, log_sum)
    else:
        fastce_row_log_softmax_f64(z__c, out__c, n_classes, best, log_sum)


cdef extern from "_vecmath.h" nogil:
    enum:
        FASTCE_BCE_LOGITS
        FASTCE_BCE_PROBS
        FASTCE_LOGISTIC
        FASTCE_SIGMOID
        FASTCE_LOG_SIGMOID
        FASTCE_FOCAL
        FASTCE_BINARY_CHUNK
        FASTCE_COLS_TILE
        FASTCE_ENTROPY
        FASTCE_KL
        FASTCE_JS
        FASTCE_CATEGORICAL_CE
    double fastce_information_term(int kind, double p, double q) noexcept
    void fastce_logistic_terms(const double* margin, const double* label,
                               const double* weight, double* residual, double* loss,
                               Py_ssize_t n, double* sums) noexcept
    double fastce_binary_point_f64(int kind, double x, double target, double pos_weight,
                                   double alpha, double gamma, double* grad,
                                   double* curv) noexcept
    bint fastce_is_valid_weight(double w) noexcept
    bint fastce_binary_valid(int kind, double x, double target, double weight) noexcept
    double fastce_binary_chunk_f32(int kind, const float* x, const float* y, const float* w,
                                   const float* pw, float* loss, float* grad, float* hess,
                                   double grad_scale, double alpha, double gamma,
                                   Py_ssize_t n, double* n_bad) noexcept
    double fastce_binary_chunk_f64(int kind, const double* x, const double* y,
                                   const double* w, const double* pw, double* loss,
                                   double* grad, double* hess, double grad_scale,
                                   double alpha, double gamma, Py_ssize_t n,
                                   double* n_bad) noexcept
    void fastce_unary_chunk_f32(int kind, const float* x, float* out, Py_ssize_t n) noexcept
    void fastce_unary_chunk_f64(int kind, const double* x, double* out, Py_ssize_t n) noexcept


cdef inline double binary_chunk(int kind, const floating* x, const floating* y,
                                const floating* w, const floating* pw, floating* loss,
                                floating* grad, floating* hess, double grad_scale,
                                double alpha, double gamma, Py_ssize_t n,
                                double* n_bad) noexcept nogil:
    if floating is float:
        return fastce_binary_chunk_f32(kind, x, y, w, pw, loss, grad, hess, grad_scale,
                                       alpha, gamma, n, n_bad)
    else:
        return fastce_binary_chunk_f64(kind, x, y, w, pw, loss, grad, hess, grad_scale,
                                       alpha, gamma, n, n_bad)


cdef inline void unary_chunk(int kind, const floating* x, floating* out,
                             Py_ssize_t n) noexcept nogil:
    if floating is float:
        fastce_unary_chunk_f32(kind, x, out, n)
    else:
        fastce_unary_chunk_f64(kind, x, out, n)


cdef inline void row_hessian(floating* hess__c, const floating* exp__c, Py_ssize_t n_classes,
                             double inv_sum, double rest, double scale) noexcept nogil:
    if floating is float:
        fastce_row_hessian_f32(hess__c, exp__c, n_classes, inv_sum, rest, scale)
    else:
        fastce_row_hessian_f64(hess__c, exp__c, n_classes, inv_sum, rest, scale)


cdef inline double row_exp_sum(const floating* z__c, floating* exp__c, Py_ssize_t n_classes,
                               double best, Py_ssize_t* n_at_max) noexcept nogil:
    if floating is float:
        return fastce_row_exp_sum_f32(z__c, exp__c, n_classes, best, n_at_max)
    else:
        return fastce_row_exp_sum_f64(z__c, exp__c, n_classes, best, n_at_max)


# Column kernels (class axis not last): see _math_cols_impl.h.
cdef inline void cols_max(const floating* z, Py_ssize_t class_stride, Py_ssize_t n_classes,
                          Py_ssize_t width, double* col_max) noexcept nogil:
    if floating is float:
        fastce_cols_max_f32(z, class_stride, n_classes, width, col_max)
    else:
        fastce_cols_max_f64(z, class_stride, n_classes, width, col_max)


cdef inline void cols_exp_rest(const floating* z, floating* exp_out, Py_ssize_t class_stride,
                               Py_ssize_t n_classes, Py_ssize_t width, const double* col_max,
                               double* col_rest) noexcept nogil:
    if floating is float:
        fastce_cols_exp_rest_f32(z, exp_out, class_stride, n_classes, width, col_max, col_rest)
    else:
        fastce_cols_exp_rest_f64(z, exp_out, class_stride, n_classes, width, col_max, col_rest)


cdef inline void cols_scale(floating* out, const floating* inp, Py_ssize_t class_stride,
                            Py_ssize_t n_classes, Py_ssize_t width, const double* scale,
                            const floating* shift, const double* shift_scale) noexcept nogil:
    if floating is float:
        fastce_cols_scale_f32(out, inp, class_stride, n_classes, width, scale, shift,
                              shift_scale)
    else:
        fastce_cols_scale_f64(out, inp, class_stride, n_classes, width, scale, shift,
                              shift_scale)


cdef inline void cols_log_softmax(const floating* z, floating* out, Py_ssize_t class_stride,
                                  Py_ssize_t n_classes, Py_ssize_t width,
                                  const double* col_max, const double* log_sum) noexcept nogil:
    if floating is float:
        fastce_cols_log_softmax_f32(z, out, class_stride, n_classes, width, col_max, log_sum)
    else:
        fastce_cols_log_softmax_f64(z, out, class_stride, n_classes, width, col_max, log_sum)


cdef inline void cols_hessian(floating* hess, const floating* exp_in, Py_ssize_t class_stride,
                              Py_ssize_t n_classes, Py_ssize_t width, const double* inv_sum,
                              const double* rest, const double* scale) noexcept nogil:
    if floating is float:
        fastce_cols_hessian_f32(hess, exp_in, class_stride, n_classes, width, inv_sum, rest,
                                scale)
    else:
        fastce_cols_hessian_f64(hess, exp_in, class_stride, n_classes, width, inv_sum, rest,
                                scale)


# Linear models.
cdef inline double dot(const floating* x, const floating* w, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fastce_dot_f32(x, w, n)
    else:
        return fastce_dot_f64(x, w, n)


cdef inline double dot_mixed(const floating* x, const double* w, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fastce_dot_mixed_f32(x, w, n)
    else:
        return fastce_dot_mixed_f64(x, w, n)


cdef inline void axpy(double* acc, double a, const floating* x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fastce_axpy_f32(acc, a, x, n)
    else:
        fastce_axpy_f64(acc, a, x, n)
