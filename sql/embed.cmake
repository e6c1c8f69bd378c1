# Writes OUT: a C++ source defining bank::sql::<NAME>() that returns the
# numbered migrations in IN_DIR, in order. Run by sql/CMakeLists.txt.
file(GLOB files "${IN_DIR}/*.sql")
list(SORT files)
set(body "")
foreach(f ${files})
  get_filename_component(name ${f} NAME)
  string(REGEX MATCH "^[0-9]+" num ${name})
  math(EXPR ver "${num}")
  file(READ ${f} content)
  string(APPEND body "      {${ver}, \"${name}\", R\"bank_sql(${content})bank_sql\"},\n")
endforeach()
file(WRITE ${OUT}.tmp "// Generated from sql/${NAME}; do not edit.\n#include \"common/db/migrations.h\"\n\nnamespace bank::sql {\n\nconst std::vector<bank::db::Migration>& ${NAME}Migrations() {\n  static const auto* const kMigrations = new std::vector<bank::db::Migration>{\n${body}  };\n  return *kMigrations;\n}\n\n}  // namespace bank::sql\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
