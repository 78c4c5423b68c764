/* flaskpush client: see issue 5 */
