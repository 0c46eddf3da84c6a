/** 9999-12-31T23:59:59Z: no real JWT NumericDate is later; a larger one is a forgery or a bug. */
export const MAX_NUMERIC_DATE = 253402300799
