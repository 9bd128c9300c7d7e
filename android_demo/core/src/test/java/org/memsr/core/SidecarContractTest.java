package org.memsr.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/**
 * The sidecar contract shared with Python (src/test/resources/sidecar_contract/, written by
 * android_demo/make_sidecar_contract.py from read_sidecar, which tests/test_sidecar_contract.py holds to the same
 * files): Sidecar.parse refuses each sidecar with Python's error, naming the same field. For faults of the JSON
 * text the two parsers word the details differently: there the start of the message and the field must agree.
 */
public class SidecarContractTest {
    private static final String NOT_JSON = "sidecar is not valid JSON";

    private static Path dir() throws URISyntaxException {
        return Paths.get(SidecarContractTest.class.getResource("/sidecar_contract/index.json").toURI()).getParent();
    }

    private static String read(Path p) throws IOException {
        return new String(Files.readAllBytes(p), StandardCharsets.UTF_8);
    }

    /** The field an error names, read as tests/test_sidecar_contract.py's named_field reads it. */
    static String namedField(String reason) {
        Matcher m = Pattern.compile("field '([^']*)'").matcher(reason);
        if (m.find()) {
            return m.group(1).replaceAll("(\\.\\d+)+$", "");
        }
        for (String p : new String[] {"^sidecar is missing fields \\(([^,)]+)", "^unknown (target|precision) ",
            "^(\\w+) must be an integer"}) {
            m = Pattern.compile(p).matcher(reason);
            if (m.find()) {
                return m.group(1);
            }
        }
        if (reason.startsWith("unsupported sidecar version")) {
            return "version";
        }
        return reason.startsWith("not a memsr artefact sidecar") ? "format" : "";
    }

    @Test
    public void theGoodSidecarParses() throws Exception {
        Sidecar sc = Sidecar.parse(read(dir().resolve("good.json")), "good.json");
        assertEquals(2, sc.scale);
        assertEquals(11, sc.halo);
        assertEquals(192, sc.tile);
        sc.requireRunnableTflite();
    }

    @Test
    public void refusesEveryCaseNamingTheFieldPythonNames() throws Exception {
        JSONArray index = JsonValues.asArray(JsonValues.parse(read(dir().resolve("index.json"))), "index");
        List<String> wrong = new ArrayList<>();
        for (int i = 0; i < index.length(); i++) {
            JSONObject c = JsonValues.asObject(index.opt(i), "case");
            String file = (String) c.opt("file");
            String field = (String) c.opt("field");
            String want = (String) c.opt("error");
            try {
                Sidecar.parse(read(dir().resolve(file)), file);
                wrong.add(file + ": accepted; Python says " + want);
                continue;
            } catch (MemsrException e) {
                assertTrue(file, e.getMessage().startsWith(file + ": "));
                String got = e.reason();
                boolean same = want.startsWith(NOT_JSON) ? got.startsWith(NOT_JSON) : got.equals(want);
                if (!same || !namedField(got).equals(field)) {
                    wrong.add(file + ": Java says \"" + got + "\" (field '" + namedField(got) + "'), Python \"" + want
                            + "\" (field '" + field + "')");
                }
            }
        }
        if (!wrong.isEmpty()) {
            fail(wrong.size() + " of " + index.length() + " cases differ:\n" + String.join("\n", wrong));
        }
        assertTrue(index.length() >= 80);
    }
}
