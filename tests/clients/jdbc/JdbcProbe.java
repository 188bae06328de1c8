// pgjdbc as Metabase, DBeaver and Tableau use it: DatabaseMetaData, a
// PreparedStatement with typed parameters, streaming with setFetchSize, and
// Statement.cancel(). Prints one JSON object. Usage: java -cp postgresql.jar JdbcProbe.java PORT
import java.sql.*;
import java.util.*;

public class JdbcProbe {
    static String q(Object v) {
        if (v == null) return "null";
        if (v instanceof Number || v instanceof Boolean) return v.toString();
        return "\"" + v.toString().replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    static String rows(ResultSet rs, String... cols) throws SQLException {
        List<String> out = new ArrayList<>();
        while (rs.next()) {
            List<String> row = new ArrayList<>();
            for (String c : cols) row.add(q(rs.getObject(c)));
            out.add("[" + String.join(",", row) + "]");
        }
        rs.close();
        return "[" + String.join(",", out) + "]";
    }

    interface Step { String run() throws Exception; }

    /** A step's JSON value, or {"error": SQLSTATE} if the driver call failed. */
    static String step(Step s) {
        try {
            return s.run();
        } catch (SQLException e) {
            return "{\"error\":" + q(e.getSQLState()) + "}";
        } catch (Exception e) {
            return "{\"error\":" + q(e.getClass().getSimpleName()) + "}";
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/vivace?user=vivace";
        Map<String, String> out = new TreeMap<>();
        try (Connection conn = DriverManager.getConnection(url)) {
            DatabaseMetaData md = conn.getMetaData();
            out.put("product", q(md.getDatabaseProductName()));
            out.put("driver_version", q(md.getDriverVersion()));
            out.put("tables", step(() -> rows(md.getTables(null, "public", "%", new String[] {"TABLE"}), "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE")));
            out.put("views", step(() -> rows(md.getTables(null, "public", "%", new String[] {"VIEW"}), "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE")));
            out.put("columns", step(() -> rows(md.getColumns(null, "public", "items", "%"), "COLUMN_NAME", "DATA_TYPE", "TYPE_NAME", "NULLABLE", "ORDINAL_POSITION")));
            out.put("primary_keys", step(() -> rows(md.getPrimaryKeys(null, "public", "items"), "COLUMN_NAME")));
            out.put("indexes", step(() -> rows(md.getIndexInfo(null, "public", "items", false, true), "INDEX_NAME")));
            out.put("schemas_include_public", step(() -> {
                ResultSet schemas = md.getSchemas();
                boolean publicSchema = false;
                while (schemas.next()) publicSchema |= "public".equals(schemas.getString("TABLE_SCHEM"));
                return q(publicSchema);
            }));
            out.put("type_info_has_core_types", step(() -> {
                ResultSet types = md.getTypeInfo();
                Set<String> typeNames = new TreeSet<>();
                while (types.next()) typeNames.add(types.getString("TYPE_NAME"));
                return q(typeNames.containsAll(List.of("int8", "text", "date", "timestamp", "bool", "float8")));
            }));

            out.put("prepared", step(() -> { try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT id, name, created FROM items WHERE id >= ? AND name <> ? AND created >= ? AND created < CAST(? AS timestamp) ORDER BY id")) {
                ps.setLong(1, 2L);
                ps.setString(2, "kiwi");
                ps.setDate(3, java.sql.Date.valueOf("2024-01-01"));
                ps.setTimestamp(4, java.sql.Timestamp.valueOf("2024-12-31 00:00:00"));
                return rows(ps.executeQuery(), "id", "name", "created");
            }}));

            out.put("streamed", step(() -> {
                conn.setAutoCommit(false);
                try (Statement st = conn.createStatement()) {
                    st.setFetchSize(100);
                    ResultSet rs = st.executeQuery("SELECT x FROM generate_series(1, 20000) AS t(x)");
                    long n = 0, sum = 0;
                    while (rs.next()) { n++; sum += rs.getLong(1); }
                    return "[" + n + "," + sum + "]";
                } finally {
                    conn.commit();
                    conn.setAutoCommit(true);
                }
            }));

            try (Statement st = conn.createStatement()) {
                Thread canceller = new Thread(() -> {
                    try { Thread.sleep(500); st.cancel(); } catch (Exception e) { throw new RuntimeException(e); }
                });
                canceller.start();
                try {
                    st.executeQuery("SELECT count(*) FROM generate_series(1, 3000000000) AS t(x) WHERE x % 7 = 3");
                    out.put("cancel", q("finished"));
                } catch (SQLException e) {
                    out.put("cancel", q(e.getSQLState()));
                }
                canceller.join();
            }
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM items")) {
                rs.next();
                out.put("after_cancel", q(rs.getLong(1)));
            }
        }
        List<String> parts = new ArrayList<>();
        for (Map.Entry<String, String> e : out.entrySet()) parts.add(q(e.getKey()) + ":" + e.getValue());
        System.out.println("{" + String.join(",", parts) + "}");
    }
}
